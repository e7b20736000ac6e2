"""Alembic environment: URL from the config's sqlalchemy.url, else from the mailproxy settings."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection, make_url

import mailproxy_models.tables  # noqa: F401 - registers every table on Base.metadata
from mailproxy_models.db import Base, make_engine
from mailproxy_models.settings import get_settings

# Any constant will do: every process that migrates a PostgreSQL database takes this lock.
PG_MIGRATION_LOCK = 0x6D61696C70  # "mailp"

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url
target_metadata = Base.metadata


def _options(dialect_name: str) -> dict[str, Any]:
    sqlite = dialect_name == "sqlite"
    return {
        "target_metadata": target_metadata,
        # SQLite alters tables by copying them; batch mode writes migrations that way.
        "render_as_batch": sqlite,
        # make_engine lets SQLAlchemy issue BEGIN (IMMEDIATE) itself, so SQLite DDL is
        # transactional: a migration that fails leaves nothing behind, version row included.
        "transactional_ddl": True,
        "compare_type": True,
    }


def run_migrations_offline() -> None:
    """``--sql``: write the SQL out instead of running it."""
    context.configure(url=url, literal_binds=True, **_options(make_url(url).get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def _set_sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    # On the driver connection: through SQLAlchemy it would start a transaction, and SQLite
    # ignores this pragma inside one.
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def run_migrations_online() -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # A batch migration drops and renames tables; with foreign keys on, dropping
                # a table would cascade-delete the rows that reference it (events of
                # messages...). Off for the migration, checked before the commit instead.
                _set_sqlite_foreign_keys(connection, on=False)
            try:
                context.configure(connection=connection, **_options(connection.dialect.name))
                with context.begin_transaction():
                    if connection.dialect.name == "postgresql":
                        # Processes upgrading at once (several containers starting) run
                        # one after the other; the later ones find the schema up to date.
                        connection.exec_driver_sql(
                            f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"
                        )
                    context.run_migrations()
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise RuntimeError(
                                f"migration left rows with broken foreign keys: {broken[:10]}"
                            )
            finally:
                if sqlite:
                    _set_sqlite_foreign_keys(connection, on=True)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
