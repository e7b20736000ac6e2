"""The API (Flask test client) and delivery workers as plain functions in this process, on
one database: delivery tests drive ``deliver_batch`` themselves, one call per batch."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import update

from mailproxy_models.db import session_scope
from mailproxy_models.messages import Message
from mailproxy_models.wakeups import make_celery_app
from mailproxy_workers.runtime import WorkerRuntime, attachment_fetcher
from mailproxy_workers.smtp_pool import SmtpConnectionPool
from tests.support.stack import Stack


class InProcessDelivery:
    """The API (test client) and delivery workers as functions in this process."""

    def __init__(self, tmp_path, database_url: str, **settings: Any) -> None:
        self.stack = Stack(tmp_path, database_url, None, **settings)
        self.instance = self.stack.app.extensions["mailproxy"]
        self.celery = make_celery_app(self.stack.settings)
        self.pools: list[SmtpConnectionPool] = []

    def runtime(self, name: str) -> WorkerRuntime:
        pool = SmtpConnectionPool(timeout=10)
        self.pools.append(pool)
        fetcher = attachment_fetcher(self.stack.settings)
        return WorkerRuntime(self.instance, pool, name, os.getpid(), fetcher)

    def add(self, token: str, messages: list[dict[str, Any]]) -> None:
        answer = self.stack.call(
            "POST", "/commands/add-messages", token=token, json={"messages": messages}
        )
        assert answer.status_code == 200 and answer.json["queued"] == len(messages), answer.json

    def message(self, token: str, msg_id: str) -> dict[str, Any]:
        answer = self.stack.call("GET", f"/message/{msg_id}", token=token)
        assert answer.status_code == 200, answer.json
        return answer.json["message"]  # type: ignore[no-any-return]

    def make_due(self) -> None:
        """Waiting messages due now: retries without sleeping through the schedule."""
        with session_scope(self.instance.sessions) as session:
            session.execute(update(Message).values(due_at=0.0))

    def close(self) -> None:
        for pool in self.pools:
            pool.close_all()
        self.stack.stop()
