"""The suite's own servers leave nothing behind that runs at interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.stack import REPO


def test_postgres_started_by_the_suite_logs_nothing_at_exit():
    # pytest closes its capture streams before the interpreter exits; a cleanup hook that
    # logs then prints "--- Logging error ---" with a traceback after a green run.
    script = textwrap.dedent(
        """
        import io, logging
        from tests.support.servers import postgres_admin_url
        stream = io.StringIO()
        logging.basicConfig(level=logging.INFO, stream=stream)
        with postgres_admin_url():
            pass
        stream.close()
        """
    )
    env_free = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env_free,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr
