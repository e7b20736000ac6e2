"""Worker heartbeats: migration 0014 up and down, and what readiness reads from the rows,
on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from mailproxy_models import migrate
from mailproxy_models.db import make_engine, make_session_factory, session_scope
from mailproxy_models.worker_heartbeats import record_heartbeat, worker_state


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migration_0014_adds_the_table_and_removes_it_again(database_url):
    migrate.upgrade(database_url, "0013")
    assert "worker_heartbeats" not in _tables(database_url)
    migrate.upgrade(database_url, "0014")
    assert "worker_heartbeats" in _tables(database_url)
    migrate.downgrade(database_url, "0013")
    assert "worker_heartbeats" not in _tables(database_url)
    assert migrate.current_revision(database_url) == "0013"
    migrate.upgrade(database_url)
    assert "worker_heartbeats" in _tables(database_url)


def _due_message(session, due_at: float) -> None:
    session.execute(
        sa.text(
            "INSERT INTO tenants (id, client_sync_path, client_attachment_path, active,"
            " created_at, updated_at) VALUES ('t1', '/s', '/a', :true, 0, 0)"
        ),
        {"true": True},
    )
    session.execute(
        sa.text(
            "INSERT INTO messages (tenant_id, id, account_id, priority, status, payload,"
            " created_at, due_at, attempts) VALUES ('t1', 'm1', 'a1', 2, 'pending', '{}',"
            " 0, :due, 0)"
        ),
        {"due": due_at},
    )


def test_the_state_is_stale_only_while_a_message_is_due(database_url):
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with session_scope(sessions) as session:
            assert worker_state(session, 60, current=1000).ok  # nothing at all
            record_heartbeat(session, "w1@host", 11, at=900)
            record_heartbeat(session, "w1@host", 12, at=930)  # the same worker, newer
            record_heartbeat(session, "w2@host", 13, at=800)
            assert worker_state(session, 60, current=1000).ok  # stale, but nothing due
            _due_message(session, due_at=2000)
            assert worker_state(session, 60, current=1000).ok  # not due yet
            stale = worker_state(session, 60, current=2000)
            assert not stale.ok
            assert "w1@host, pid 12" in stale.detail and "1070 s" in stale.detail
            assert worker_state(session, 2000, current=2000).ok  # within the limit
            record_heartbeat(session, "w2@host", 14, at=1990)
            assert worker_state(session, 60, current=2000).ok
            # Rows of workers gone for a week are forgotten when another worker writes.
            record_heartbeat(session, "w3@host", 15, at=900 + 8 * 86400)
            rows = session.execute(sa.text("SELECT worker FROM worker_heartbeats")).scalars()
            assert sorted(rows) == ["w3@host"]
    finally:
        engine.dispose()
