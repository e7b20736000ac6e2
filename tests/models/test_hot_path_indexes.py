"""Every query on a hot path is served by an index, never by a scan of the whole message
history, on SQLite and PostgreSQL; and migration 0013 that adds those indexes goes up and
down.

The statements are the ones the domain functions really run (captured as they execute),
each explained by the database with the parameters it was given."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from mailproxy_models.claims import claim_due_messages, due_priorities, queue_depths
from mailproxy_models.db import make_engine, make_session_factory, now, session_scope
from mailproxy_models.delivery_metrics import delivery_snapshot
from mailproxy_models.lifecycle import AttemptOutcome, record_attempts
from mailproxy_models.messages import MessageFilter, list_messages
from mailproxy_models.migrate import downgrade, upgrade
from mailproxy_models.reports import purge_reported
from mailproxy_models.send_log import purge_send_log
from mailproxy_models.tenants import update_tenant
from tests.models.factories import BOX, enqueue, message, tenant_with_account

NEW_MESSAGE_INDEXES = {
    "ix_messages_waiting_tenant",
    "ix_messages_tenant_status",
    "ix_messages_claim_token",
    "ix_messages_in_flight",
    "ix_messages_reported",
}
NEW_SEND_LOG_INDEXES = {"ix_send_log_tenant_ts", "ix_send_log_ts"}


def _indexes(url: str, table: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        return {ix["name"]: ix["column_names"] for ix in sa.inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def test_migration_0013_adds_the_indexes_and_takes_them_away(database_url):
    upgrade(database_url)
    messages = _indexes(database_url, "messages")
    assert NEW_MESSAGE_INDEXES <= set(messages)
    assert messages["ix_messages_claim"] == ["priority", "due_at", "pk"]
    assert NEW_SEND_LOG_INDEXES <= set(_indexes(database_url, "send_log"))

    downgrade(database_url, "0012")
    messages = _indexes(database_url, "messages")
    assert not NEW_MESSAGE_INDEXES & set(messages)
    assert messages["ix_messages_claim"] == ["status", "priority", "due_at", "pk"]
    assert not NEW_SEND_LOG_INDEXES & set(_indexes(database_url, "send_log"))

    upgrade(database_url)
    assert NEW_MESSAGE_INDEXES <= set(_indexes(database_url, "messages"))


@contextmanager
def _captured(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def keep(_conn, _cursor, statement, parameters, _context, executemany):
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "DELETE")):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows a PostgreSQL plan read from messages and send_log: returned plus filtered out."""
    own = 0
    if plan.get("Relation Name") in ("messages", "send_log"):
        loops = plan.get("Actual Loops", 1)
        own = (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)) * loops
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


def _work(engine: sa.Engine, statement: str, parameters: Any) -> int:
    """What one statement costs, in a unit that grows with the rows it reads: rows read
    (PostgreSQL, from EXPLAIN ANALYZE) or virtual-machine steps (SQLite). Run in a
    transaction rolled back, so a DELETE measured deletes nothing."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            if engine.dialect.name == "postgresql":
                # The tables here are small: without this the planner would scan them
                # whole; what matters is whether an index *can* bound the statement.
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                conn.exec_driver_sql("SET LOCAL jit = off")
                plan = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
                ).scalar()
                if os.environ.get("SHOW_PLANS"):
                    print(statement, parameters, json.dumps(plan, indent=1))
                return _rows_read(plan[0]["Plan"])
            steps = [0]

            def count() -> int:
                steps[0] += 1
                return 0

            raw = conn.connection.driver_connection
            raw.set_progress_handler(count, 10)
            try:
                result = conn.exec_driver_sql(statement, parameters)
                if result.returns_rows:
                    result.all()
            finally:
                raw.set_progress_handler(None, 10)
            return steps[0]
        finally:
            transaction.rollback()


def _add_history(sessions: Any, count: int, prefix: str) -> None:
    """Sent, reported messages with their events and send-log rows, as delivery leaves them
    (the send log stamped earlier than any window the checks look at)."""
    enqueue(sessions, [message(f"{prefix}{i}", account_id="main") for i in range(count)])
    start = now()
    with session_scope(sessions) as session:
        claimed = claim_due_messages(session, 2, count, 300, start)
    sent = AttemptOutcome("sent", "ok", 250, None, "OK")
    with session_scope(sessions) as session:
        record_attempts(session, {m.pk: sent for m in claimed}, "w", [60], start)
        session.execute(sa.text("UPDATE messages SET reported_ts = :t"), {"t": start - 10})
        session.execute(sa.text("UPDATE message_events SET reported_ts = :t"), {"t": start})
        session.execute(
            sa.text("UPDATE send_log SET ts = :old WHERE ts > :recent"),
            {"old": start - 200000, "recent": start - 1000},
        )


def _waiting(sessions: Any, prefix: str) -> None:
    start = now()
    enqueue(sessions, [message(f"{prefix}n{i}", account_id="main") for i in range(5)])
    enqueue(
        sessions,
        [message(f"{prefix}l{i}", account_id="main", deferred_ts=start + 3600) for i in range(5)],
    )


HOT_PATHS: dict[str, Callable[[Any], Any]] = {
    "claim": lambda s: claim_due_messages(s, 2, 50, 300, now()),
    "sweeper probe": lambda s: due_priorities(s),
    "tenant status": lambda s: queue_depths(s, "acme"),
    "active listing": lambda s: list_messages(s, MessageFilter("acme", active_only=True), 10),
    "listing by status": lambda s: list_messages(s, MessageFilter("acme", status="sent"), 10),
    "metrics": lambda s: delivery_snapshot(s),
    "retention purge": lambda s: purge_reported(s, now() - 3600),
    "send log purge": lambda s: purge_send_log(s, now() - 86400 * 3),
}


def _cost(engine: sa.Engine, sessions: Any, path: str) -> int:
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # statistics, as autovacuum keeps them on a live table
            conn.exec_driver_sql("ANALYZE")
    with _captured(engine) as statements, session_scope(sessions) as session:
        HOT_PATHS[path](session)
        session.rollback()  # measure on the same rows each time
    assert statements
    return sum(_work(engine, s, p) for s, p in statements)


@pytest.mark.parametrize("path", list(HOT_PATHS))
def test_hot_path_cost_stays_flat_as_the_sent_history_grows_tenfold(database_url, path):
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        sessions = make_session_factory(engine)
        tenant_with_account(sessions)
        with session_scope(sessions) as session:
            update_tenant(session, BOX, "acme", {"rate_limits": {"per_minute": 1000}})
        _add_history(sessions, 30, "a")
        _waiting(sessions, "a")
        small = _cost(engine, sessions, path)
        _add_history(sessions, 300, "b")
        large = _cost(engine, sessions, path)
        # Ten times the history: a scan of it would cost ~10x; an index keeps it flat.
        assert large <= small * 1.5 + 20, (small, large)
    finally:
        engine.dispose()
