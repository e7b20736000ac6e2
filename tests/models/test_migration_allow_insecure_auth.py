"""Migration 0012 (accounts.allow_insecure_auth) up and down, on SQLite and PostgreSQL:
existing accounts get false, and going down removes only the column."""

from __future__ import annotations

import sqlalchemy as sa

from mailproxy_models.db import make_engine
from mailproxy_models.migrate import downgrade, pending_differences, upgrade


def _columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("accounts")}
    finally:
        engine.dispose()


def _execute(url: str, sql: str) -> object:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(sql)
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def test_0012_adds_allow_insecure_auth_false_for_existing_accounts_and_removes_it(database_url):
    upgrade(database_url, "0011")
    assert "allow_insecure_auth" not in _columns(database_url)
    _execute(
        database_url,
        "INSERT INTO tenants (id, client_sync_path, client_attachment_path, active,"
        " created_at, updated_at) VALUES ('acme', '/s', '/a', true, 0, 0)",
    )
    _execute(
        database_url,
        "INSERT INTO accounts (tenant_id, id, host, port, tls_verify, ttl, limit_behavior,"
        " is_pec, is_default, imap_tls_verify, imap_folder, imap_processed, created_at,"
        " updated_at) VALUES ('acme', 'main', 'h', 25, true, 300, 'defer', false, false,"
        " true, 'INBOX', 'seen', 0, 0)",
    )
    upgrade(database_url, "0012")
    assert _execute(database_url, "SELECT allow_insecure_auth FROM accounts") in (False, 0)
    downgrade(database_url, "0011")
    assert "allow_insecure_auth" not in _columns(database_url)
    assert _execute(database_url, "SELECT host FROM accounts") == "h"
    upgrade(database_url)
    assert pending_differences(database_url) == []
