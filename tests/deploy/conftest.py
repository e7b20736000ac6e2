"""Fixtures of the deployment tests: the tools venv that tests/run.sh fills in .tools/."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "mailproxy"
TOOLS_VENV = ROOT / ".tools" / "deploy-venv"


@pytest.fixture(scope="session")
def tools_python() -> Path:
    """Python of .tools/deploy-venv (Helm engine, kubernetes-validate, hadolint)."""
    python = TOOLS_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: bash tests/run.sh installs the deployment tools")
    return python
