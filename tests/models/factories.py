"""Rows for domain tests, made through the same functions the API uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from mailproxy_models.accounts import upsert_account
from mailproxy_models.db import make_engine, make_session_factory, session_scope
from mailproxy_models.message_validation import MessageLimits
from mailproxy_models.messages import enqueue_messages
from mailproxy_models.migrate import upgrade
from mailproxy_models.secrets_box import SecretBox
from mailproxy_models.tenants import create_tenant

LIMITS = MessageLimits(max_recipients=100, max_headers=50)
BOX = SecretBox(os.urandom(32))


@contextmanager
def database(url: str) -> Iterator[sessionmaker[Session]]:
    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def tenant_with_account(sessions: sessionmaker[Session], tenant_id: str = "acme") -> None:
    with session_scope(sessions) as session:
        create_tenant(session, BOX, {"id": tenant_id})
        upsert_account(
            session, BOX, {"tenant_id": tenant_id, "id": "main", "host": "127.0.0.1", "port": 25}
        )


def message(msg_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": msg_id,
        "from": "a@example.com",
        "to": ["b@example.org"],
        "subject": "s",
        **fields,
    }


def enqueue(sessions: sessionmaker[Session], messages: list[dict[str, Any]], tenant: str = "acme"):
    with session_scope(sessions) as session:
        return enqueue_messages(session, tenant, messages, LIMITS)
