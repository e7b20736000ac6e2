"""The documentation site builds with ``mkdocs --strict``, and its generated pages are current."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailproxy_api.openapi_doc import openapi_document, render_json, render_markdown
from mailproxy_models.settings_doc import render as render_configuration
from tests.deploy.conftest import ROOT

DOCS = ROOT / "docs"
PAGES = [
    "index",
    "quickstart",
    "architecture",
    "configuration",
    "api",
    "api-reference",
    "deployment",
    "operations",
    "security",
    "examples",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            "docs/mkdocs.yml",
            "-d",
            str(site_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site_dir


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi_document()


def test_site_builds_strict_with_every_page(site):
    for page in PAGES:
        assert (site / f"{page}.html").is_file(), page
    assert json.loads((site / "openapi.json").read_text())["openapi"].startswith("3.")


def test_site_loads_nothing_from_other_hosts(site):
    external = []
    for page in site.glob("*.html"):
        tags = re.findall(r"<(?:script|link|img)\b[^>]*>", page.read_text())
        external += [t for t in tags if re.search(r"""(?:src|href)=["']?(?:https?:)?//""", t)]
    assert external == []


def test_site_leaves_out_node_modules_and_its_own_config(site):
    assert not (site / "mkdocs.yml").exists()
    assert not list(site.rglob("node_modules"))


def test_examples_page_shows_the_code_of_every_example(site):
    text = html.unescape(re.sub(r"<[^>]+>", "", (site / "examples.html").read_text()))
    for marker in (
        "class ReportHandler",
        '@app.cli.command("send")',
        "def proxy_sync(request)",
        'app.post("/proxy_sync"',
    ):
        assert marker in text, marker


def test_configuration_page_is_generated_from_the_settings():
    assert (DOCS / "configuration.md").read_text() == render_configuration(), (
        "regenerate: python -m mailproxy_models.settings_doc > docs/configuration.md"
    )


def test_committed_openapi_json_matches_the_application(document):
    assert (DOCS / "openapi.json").read_text() == render_json(document), (
        "regenerate: python -m mailproxy_api.openapi_doc json > docs/openapi.json"
    )


def test_api_reference_page_matches_the_application_and_lists_every_operation(document):
    page = (DOCS / "api-reference.md").read_text()
    assert page == render_markdown(document), (
        "regenerate: python -m mailproxy_api.openapi_doc markdown > docs/api-reference.md"
    )
    for path, item in document["paths"].items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item:
                assert f"### `{method.upper()} {path}`" in page


def test_deployment_page_shows_the_dockerfile_and_every_chart_value(site):
    text = html.unescape(re.sub(r"<[^>]+>", "", (site / "deployment.html").read_text()))
    assert (ROOT / "deploy" / "Dockerfile").read_text().splitlines()[-1] in text
    for line in (ROOT / "deploy" / "helm" / "mailproxy" / "values.yaml").read_text().splitlines():
        assert line.strip() in text, line
