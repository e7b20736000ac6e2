"""A short run of bench/soak.py: PostgreSQL + Redis, two workers, beat, the API under
gunicorn, a steady load with every fault in rotation. The bars that hold for a short run:
nothing lost, nothing marked sent without a 250, duplicates bounded by what the killed
workers had claimed. Its own PostgreSQL database on the suite's server, its own Redis."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1200)
def test_a_three_minute_soak_loses_nothing_and_sends_nothing_without_a_250(postgres_admin):
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "soak.py"),
            "--minutes",
            "3",
            "--rate",
            "20",
            "--fault-every",
            "40",
            "--drain",
            "150",
            "--postgres",
            postgres_admin,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    output = run.stdout + run.stderr
    assert "messages lost: 0 " in output, output[-4000:]
    assert "sent without a 250: 0 " in output, output[-4000:]
    for fault in (
        "SIGKILL worker",
        "Redis restarted",
        "backends of the app terminated",
        "SMTP server stopped",
    ):
        assert fault in output, output[-4000:]
    found = re.search(r"duplicates at the sink: (\d+) by message id.*SIGKILL\(s\): (\d+)", output)
    assert found, output[-4000:]
    assert int(found.group(1)) <= int(found.group(2)), output[-4000:]
    assert len(re.findall(r"minute \d+: delivered", output)) == 3, output[-4000:]
    assert run.returncode == 0, output[-4000:]
