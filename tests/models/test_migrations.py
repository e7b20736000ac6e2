"""Alembic migrations: up, down and up again on SQLite and PostgreSQL; models agree with them."""

from __future__ import annotations

import sqlalchemy as sa

from mailproxy_models.db import Base, make_engine
from mailproxy_models.migrate import current_revision, downgrade, pending_differences, upgrade


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_and_upgrade_again(database_url):
    upgrade(database_url)
    assert _tables(database_url) == set(Base.metadata.tables)
    assert current_revision(database_url) == "0001_initial"
    downgrade(database_url, "base")
    assert _tables(database_url) == set()
    assert current_revision(database_url) is None
    upgrade(database_url)
    assert _tables(database_url) == set(Base.metadata.tables)


def test_upgrade_twice_changes_nothing(database_url):
    upgrade(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == "0001_initial"


def test_models_and_migrations_agree(database_url):
    upgrade(database_url)
    assert pending_differences(database_url) == []


def test_a_model_change_without_migration_is_detected(database_url):
    upgrade(database_url)
    drifted = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    sa.Table("messages", drifted, sa.Column("surprise", sa.Integer), extend_existing=True)
    differences = pending_differences(database_url, drifted)
    assert [d[0] for d in differences] == ["add_column"]
