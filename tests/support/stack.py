"""A whole mailproxy on real parts for end-to-end tests: API (Flask test client in this
process), real ``celery worker`` processes, a real database and broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailproxy_api import create_app
from mailproxy_models import migrate
from mailproxy_models.settings import Settings

ADMIN_TOKEN = "admin-test-token-0123456789"
REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll until ``predicate`` returns something truthy; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


class Stack:
    def __init__(self, data_dir: Path, database_url: str, broker_url: str | None, **overrides: Any):
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "database_url": database_url,
            "broker_url": broker_url,
            "admin_token": ADMIN_TOKEN,
            "sweep_interval": 1.0,
            "lease_seconds": 10,
            "smtp_timeout": 5.0,
            "retry_schedule": [2, 4, 8],
            # The test servers (client apps, file servers) listen on 127.0.0.1.
            "private_networks_allowed": ["*=127.0.0.1/32"],
        }
        values.update(overrides)
        self.settings = Settings(**values)
        migrate.upgrade(database_url)
        self.app = create_app(self.settings)
        self.client = self.app.test_client()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- environment for child processes -------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
        for name, value in self.settings.model_dump().items():
            if value is None or name == "config_file":
                continue
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            env[f"MAILPROXY_{name.upper()}"] = str(value)
        env["PYTHONPATH"] = str(REPO)
        return env

    # -- workers ---------------------------------------------------------------------------
    def start_worker(
        self,
        name: str,
        concurrency: int = 1,
        beat: bool = False,
        queues: str | None = None,
        pool: str | None = None,
    ) -> subprocess.Popen[bytes]:
        log_path = self.logs / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mailproxy_workers",
            "worker",
            f"--pool={pool or ('threads' if concurrency > 1 else 'solo')}",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "-n",
            f"{name}@%h",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        if beat:
            command += ["--beat", f"--schedule={self.logs / (name + '-beat')}"]
        if queues:
            command += ["-Q", queues]
        log_file = open(log_path, "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=self.env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(proc)
        wait_until(lambda: proc.poll() is not None or b" ready." in log_path.read_bytes(), 60)
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited:\n{log_path.read_text()[-3000:]}")
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.app.extensions["mailproxy"].engine.dispose()

    # -- API -------------------------------------------------------------------------------
    def call(self, method: str, path: str, token: str = ADMIN_TOKEN, **kwargs: Any) -> Any:
        response = self.client.open(path, method=method, headers={"X-API-Token": token}, **kwargs)
        return response

    def setup_tenant(
        self, smtp_port: int, tenant_id: str = "acme", account: dict[str, Any] | None = None
    ) -> str:
        """Create a tenant with one account on the given SMTP port; returns the tenant key."""
        answer = self.call("POST", "/tenant", json={"id": tenant_id, "name": tenant_id.title()})
        assert answer.status_code == 200, answer.json
        key: str = answer.json["api_key"]
        body = {"id": "main", "host": "127.0.0.1", "port": smtp_port, "use_tls": False}
        body.update(account or {})
        answer = self.call("POST", "/account", token=key, json=body)
        assert answer.status_code == 200, answer.json
        return key

    def all_messages(self, token: str = ADMIN_TOKEN, **query: Any) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": 1000, **query}
            if cursor:
                params["cursor"] = cursor
            answer = self.call("GET", "/messages", token=token, query_string=params)
            assert answer.status_code == 200, answer.json
            messages += answer.json["messages"]
            cursor = answer.json["next_cursor"]
            if not cursor:
                return messages

    def wait_all_status(self, count: int, status: str, timeout: float) -> list[dict[str, Any]]:
        def done() -> list[dict[str, Any]] | None:
            messages = self.all_messages()
            ok = [m for m in messages if m["status"] == status]
            return messages if len(ok) == count else None

        return wait_until(done, timeout, interval=0.25)  # type: ignore[no-any-return]


def make_messages(count: int, prefix: str = "MSG", **fields: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{i:05d}",
            "from": "Shop <shop@example.com>",
            "to": [f"user{i}@example.org"],
            "cc": [f"copy{i}@example.net"],
            "subject": f"Order {i} ✓",
            "body": f"Hello {i}, your order is ready.",
            "headers": {"X-Campaign": "nov", "X-Index": str(i)},
            "batch_code": "nov-news",
            **fields,
        }
        for i in range(count)
    ]
