"""Alembic environment: the URL comes from the config (set by mailproxy_models.migrate)."""

from __future__ import annotations

from alembic import context

import mailproxy_models.api_keys  # noqa: F401 - registers every table on Base.metadata
import mailproxy_models.lifecycle  # noqa: F401
from mailproxy_models.db import Base, make_engine
from mailproxy_models.settings import get_settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url


def run_migrations() -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()


run_migrations()
