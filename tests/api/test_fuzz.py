"""schemathesis over the whole OpenAPI document with every check on (`--checks all`:
no 5xx, answers as documented, schema-valid requests accepted, schema-violating ones
refused, 405 with Allow, authentication required where documented), with the admin token
and with a tenant token, against the API served over loopback on PostgreSQL with a Redis
broker. The document is read from the running server, so the run covers whatever it holds.

MAILPROXY_FUZZ_MAX_EXAMPLES sets the examples per operation and phase (default 120); the two
runs together must generate at least MAILPROXY_FUZZ_MIN_CASES cases (default 10,000).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from mailproxy_api.errors import JsonErrorRequestHandler
from tests.support.servers import fresh_postgres_database
from tests.support.stack import ADMIN_TOKEN, REPO, Stack, make_messages

HERE = Path(__file__).resolve().parent
MAX_EXAMPLES = int(os.environ.get("MAILPROXY_FUZZ_MAX_EXAMPLES", "120"))
MIN_CASES = int(os.environ.get("MAILPROXY_FUZZ_MIN_CASES", "10000"))


@pytest.fixture(scope="module")
def served(tmp_path_factory, postgres_admin, redis_server) -> Iterator[tuple[str, str]]:
    """The API on a loopback port; yields its base URL and a tenant key."""
    redis.Redis.from_url(redis_server).flushdb()
    with fresh_postgres_database(postgres_admin) as url:
        stack = Stack(tmp_path_factory.mktemp("fuzz"), url, redis_server)
        tenant_key = stack.setup_tenant(2525)
        stack.call(
            "POST", "/commands/add-messages", token=tenant_key, json={"messages": make_messages(3)}
        )
        server = make_server(
            "127.0.0.1", 0, stack.app, threaded=True, request_handler=JsonErrorRequestHandler
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", tenant_key
        finally:
            server.shutdown()
            stack.stop()


def _schemathesis(base_url: str, token: str, report: Path) -> tuple[int, str]:
    """Run the schemathesis CLI; returns the number of generated cases and its output."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--header",
        f"X-API-Token: {token}",
        "--seed",
        "20261202",
        "--no-color",
    ]
    done = subprocess.run(
        # Run in a scratch directory: the CLI keeps its example database in its cwd.
        command,
        cwd=report.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = done.stdout + done.stderr
    report.write_text(output)
    assert done.returncode == 0, output[-8000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated, output[-3000:]
    return int(generated.group(1)), output


@pytest.mark.timeout(1500)  # two schemathesis runs of over 5,000 cases each
def test_schemathesis_finds_nothing_with_either_token(served, tmp_path):
    base_url, tenant_key = served
    # The tenant first: the admin run may delete the tenant along the way.
    tenant_cases, _ = _schemathesis(base_url, tenant_key, tmp_path / "tenant.txt")
    admin_cases, _ = _schemathesis(base_url, ADMIN_TOKEN, tmp_path / "admin.txt")
    print(f"schemathesis: {tenant_cases} cases with a tenant token, {admin_cases} with the admin")
    assert tenant_cases + admin_cases >= MIN_CASES
