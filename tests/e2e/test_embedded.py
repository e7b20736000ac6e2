"""The README's first command: ``mail-proxy start`` on SQLite with the embedded broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.e2e.checks import assert_delivered_as_posted
from tests.support.servers import free_port
from tests.support.stack import ADMIN_TOKEN, make_messages, wait_until

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_mail_proxy_start_delivers_hundred_messages_and_stops_cleanly(tmp_path, smtp_sink):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
    env.update(MAILPROXY_ADMIN_TOKEN=ADMIN_TOKEN, MAILPROXY_SWEEP_INTERVAL="2")
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [MAIL_PROXY, "start", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        banner = [proc.stdout.readline() for _ in range(6)]
        text = "".join(banner)
        assert f"API:         {base}" in text and f"{base}/docs" in text and ADMIN_TOKEN in text
        wait_until(lambda: _get(f"{base}/health"), timeout=30)
        admin = {"X-API-Token": ADMIN_TOKEN}

        tenant = requests.post(f"{base}/tenant", json={"id": "acme"}, headers=admin, timeout=10)
        key = tenant.json()["api_key"]
        tenant_auth = {"Authorization": f"Bearer {key}"}
        account = {"id": "main", "host": "127.0.0.1", "port": smtp_sink.port, "use_tls": False}
        assert requests.post(f"{base}/account", json=account, headers=tenant_auth, timeout=10).ok
        posted = make_messages(100)
        answer = requests.post(
            f"{base}/commands/add-messages",
            json={"messages": posted},
            headers=tenant_auth,
            timeout=30,
        ).json()
        assert answer == {"ok": True, "queued": 100, "rejected": []}

        received = smtp_sink.wait_for(100, timeout=120)

        def all_sent() -> list | None:
            page = requests.get(
                f"{base}/messages", params={"limit": 1000}, headers=tenant_auth, timeout=10
            ).json()["messages"]
            return page if all(m["status"] == "sent" and m["sent_ts"] for m in page) else None

        wait_until(all_sent, timeout=30, interval=0.25)
        assert_delivered_as_posted(posted, received)
        assert (data_dir / "mailproxy.sqlite").exists() and (data_dir / "broker.sqlite").exists()
        assert oct((data_dir / "encryption.key").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "stopped." in output
    worker_log = (data_dir / "logs" / "worker.log").read_text()
    assert "Traceback" not in worker_log, worker_log[-3000:]


def test_admin_token_is_generated_once_and_kept(tmp_path):
    from mailproxy_models.instance import admin_token
    from mailproxy_models.settings import Settings

    settings = Settings(data_dir=tmp_path)
    first = admin_token(settings)
    assert first == admin_token(Settings(data_dir=tmp_path))
    assert oct((tmp_path / "admin_token").stat().st_mode & 0o777) == "0o600"


def _get(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False
