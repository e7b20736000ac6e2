"""The command line administers a running instance through its API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from mailproxy_models.db import now, session_scope
from mailproxy_models.inbound import InboundFacts, record_inbound_mail
from tests.support.servers import free_port
from tests.support.stack import ADMIN_TOKEN, Stack

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))


def _run(*args: str, url: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
    env.update(MAILPROXY_URL=url, MAILPROXY_ADMIN_TOKEN=token, COLUMNS="200")
    return subprocess.run([MAIL_PROXY, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def served(tmp_path, sqlite_url) -> Iterator[tuple[Stack, str]]:
    """The API on a real HTTP port, and its URL."""
    stack = Stack(tmp_path, sqlite_url, None)
    server = make_server("127.0.0.1", free_port(), stack.app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield stack, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        stack.stop()


def test_tenants_and_tokens_from_the_command_line(served):
    stack, url = served
    created = _run("tenants", "create", "acme", "--name", "Acme", url=url)
    assert created.returncode == 0, created.stderr
    first_key = created.stdout.split("(shown once): ")[1].split()[0]
    assert stack.call("GET", "/messages", token=first_key).status_code == 200

    issued = _run("tokens", "create", "acme", "--name", "ci", "--expires-in-days", "30", url=url)
    second_key = issued.stdout.split("(shown once): ")[1].split()[0]
    listed = json.loads(_run("tokens", "list", "acme", "--json", url=url).stdout)
    assert [k["name"] for k in listed] == ["initial", "ci"] and listed[1]["expires_at"]
    assert first_key not in json.dumps(listed)

    revoked = _run("tokens", "revoke", "acme", str(listed[0]["key_id"]), url=url)
    assert revoked.returncode == 0
    assert stack.call("GET", "/messages", token=first_key).status_code == 401
    assert stack.call("GET", "/messages", token=second_key).status_code == 200

    table = _run("tenants", "list", url=url).stdout
    assert "acme" in table and "Acme" in table


def test_refusals_exit_1_with_the_reason_and_no_traceback(served):
    _stack, url = served
    wrong = _run("tenants", "list", url=url, token="not-the-token")
    assert wrong.returncode == 1 and "401" in wrong.stderr and "Traceback" not in wrong.stderr
    _run("tenants", "create", "acme", url=url)
    again = _run("tenants", "create", "acme", url=url)
    assert again.returncode == 1 and "already exists" in again.stderr
    down = _run("tenants", "list", url=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_batches_suspended_and_activated_from_the_command_line(served):
    stack, url = served
    _run("tenants", "create", "acme", url=url)
    held = _run("batches", "suspend", "acme", "--batch", "nov", url=url)
    assert held.returncode == 0 and "suspended batches: nov" in held.stdout
    released = _run("batches", "activate", "acme", url=url)
    assert "active=True" in released.stdout and "suspended batches: none" in released.stdout


def test_inbound_log_from_the_command_line(served):
    stack, url = served
    key = stack.setup_tenant(2525)
    with session_scope(stack.app.extensions["mailproxy"].sessions) as session:
        for number, kind in enumerate(("auto_reply", "not_recognised")):
            facts = InboundFacts(kind, f"Subject: mail {number}")
            record_inbound_mail(session, "acme", "main", f"{number}" * 64, facts, now())
    listed = _run("inbound", "list", "--json", url=url, token=key)
    assert listed.returncode == 0, listed.stderr
    assert [e["summary"] for e in json.loads(listed.stdout)] == [
        "Subject: mail 1",
        "Subject: mail 0",
    ]
    newest = json.loads(
        _run("inbound", "list", "--limit", "1", "--json", url=url, token=key).stdout
    )
    assert [e["kind"] for e in newest] == ["not_recognised"]
    table = _run("inbound", "list", "--tenant", "acme", "--kind", "auto_reply", url=url).stdout
    assert "auto_reply" in table and "not_recognised" not in table
    wrong = _run("inbound", "list", "--outcome", "lost", url=url, token=key)
    assert wrong.returncode == 1 and "outcome" in wrong.stderr and "Traceback" not in wrong.stderr
