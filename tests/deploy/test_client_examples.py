"""The client examples of the docs site run: each sends a message through a real
``mail-proxy start`` to an SMTP sink, and answers a delivery report as mailproxy expects."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.deploy.conftest import ROOT
from tests.support.servers import free_port
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import ADMIN_TOKEN, wait_until

EXAMPLES = ROOT / "docs" / "examples"
BIN = Path(sys.executable).parent
SYNC_TOKEN = "report-token-for-the-test"
REPORT = {
    "delivery_report": [
        {"id": "order-1001-a", "sent_ts": 1795600000},
        {"id": "order-1002-b", "error_ts": 1795600001, "error": "550 5.1.1 no such user"},
        {"id": "order-1003-c", "deferred_ts": 1795600300, "deferred_reason": "451 try later"},
    ]
}


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=5)
    except (requests.ConnectionError, requests.Timeout):
        return False  # not listening yet, or too busy starting to answer: asked again
    return True


@pytest.fixture(scope="module")
def sink() -> Iterator[SMTPSink]:
    server = SMTPSink()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mailproxy(tmp_path_factory, sink) -> Iterator[dict[str, str]]:
    """``mail-proxy start`` with a tenant whose account is the sink; the examples' settings."""
    data_dir = tmp_path_factory.mktemp("mailproxy")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
    env.update(MAILPROXY_ADMIN_TOKEN=ADMIN_TOKEN, MAILPROXY_SWEEP_INTERVAL="2")
    log = (data_dir / "start.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "mail-proxy"), "start", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/health"), timeout=60)
        admin = {"X-API-Token": ADMIN_TOKEN}
        tenant = requests.post(f"{base}/tenant", json={"id": "shop"}, headers=admin, timeout=10)
        key = tenant.json()["api_key"]
        account = {"id": "main", "host": "127.0.0.1", "port": sink.port, "use_tls": False}
        created = requests.post(
            f"{base}/account", json=account, headers={"X-API-Token": key}, timeout=10
        )
        assert created.ok, created.text
        yield {"MAILPROXY_URL": base, "MAILPROXY_API_KEY": key, "MAILPROXY_ACCOUNT": "main"}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def node_example() -> Path:
    folder = EXAMPLES / "node"
    if not (folder / "node_modules" / "express").is_dir():
        npm = shutil.which("npm")
        assert npm, "the Node example needs npm (Node.js 18 or later)"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--silent"],
            cwd=folder,
            check=True,
            timeout=300,
        )
    return folder


def example_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
    env.update(settings, SYNC_TOKEN=SYNC_TOKEN, PYTHONPATH="")
    env["PATH"] = f"{BIN}:{env['PATH']}"
    return env


SENDERS = {
    "python": (["python", "app.py", "send"], "python"),
    "flask": (["python", "-m", "flask", "--app", "app", "send"], "flask"),
    "django": (["python", "manage.py", "send_order_mail"], "django"),
    "node": (["node", "app.js", "send"], "node"),
}


def servers(port: int) -> dict[str, list[str]]:
    return {
        "python": ["python", "app.py", "serve", "--port", str(port)],
        "flask": ["python", "-m", "flask", "--app", "app", "run", "--port", str(port)],
        "django": ["python", "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "node": ["node", "app.js", "serve", str(port)],
    }


@pytest.mark.parametrize("example", sorted(SENDERS))
def test_example_sends_a_message_that_reaches_the_smtp_server(
    example, mailproxy, sink, node_example
):
    command, folder = SENDERS[example]
    recipient = f"{example}-customer@example.org"
    before = len(sink.messages)
    result = subprocess.run(
        [*command, recipient],
        cwd=EXAMPLES / folder,
        env=example_env(mailproxy),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"""["']queued["']: ?1""", result.stdout), result.stdout

    def arrived():
        return [m for m in sink.messages[before:] if recipient in m.rcpt_tos]

    (received,) = wait_until(arrived, timeout=60, interval=0.2)
    message = received.message()
    assert message["Subject"] == "Your order 1001"
    assert message["From"] == "Shop <shop@example.com>"
    assert "Order 1001 ships today." in message.get_content()


@pytest.mark.parametrize("example", sorted(SENDERS))
def test_example_acknowledges_a_delivery_report_and_refuses_a_wrong_token(
    example, tmp_path, node_example
):
    port = free_port()
    output = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        servers(port)[example],
        cwd=EXAMPLES / SENDERS[example][1],
        env=example_env({}),
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/proxy_sync"
    try:
        wait_until(lambda: _answers(url), timeout=30, interval=0.1)
        answer = requests.post(
            url, json=REPORT, headers={"Authorization": f"Bearer {SYNC_TOKEN}"}, timeout=10
        )
        assert answer.status_code == 200 and answer.json() == {"ok": True}
        refused = requests.post(
            url, json=REPORT, headers={"Authorization": "Bearer wrong"}, timeout=10
        )
        assert refused.status_code == 401 and refused.json()["ok"] is False
        time.sleep(0.2)  # the server's log line may trail its answer
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        output.close()
    log = (tmp_path / "server.log").read_text()
    for entry in REPORT["delivery_report"]:
        assert f"report {entry['id']}" in log, log
