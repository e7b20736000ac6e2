"""Engine, session factory and the declarative base shared by every table."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# Stable constraint names, so Alembic autogenerate and downgrades name the same objects on
# SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# 64-bit keys for the tables that grow with traffic; SQLite needs INTEGER for its rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def now() -> float:
    """Current time as Unix seconds; every timestamp column holds this form."""
    return time.time()


def unix_seconds(value: float | None) -> int | None:
    """A timestamp column as the API shows it: whole Unix seconds, or None."""
    return int(value) if value is not None else None


def insert_for(session: Session, table: Any) -> Any:
    """INSERT of the session's dialect, which offers ``on_conflict_do_nothing`` (PostgreSQL
    and SQLite >= 3.24 both do; the generic INSERT does not)."""
    dialect = session.get_bind().dialect.name
    return {"postgresql": pg_insert, "sqlite": sqlite_insert}[dialect](table)


def create_private_file(path: Path) -> None:
    """Create a data file readable by its owner only (0600), in a directory likewise (0700),
    before a library creates it with the process umask: they hold message bodies and
    credentials. An existing file is left as it is. SQLite gives its -wal and -shm files
    the permissions of the database file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, set it up for several processes writing at once.

    SQLite runs in WAL mode with a long busy timeout, and every transaction starts with
    ``BEGIN IMMEDIATE``: it takes the write lock up front, so two processes never both read
    and then fail to upgrade to writing (SQLITE_BUSY that no timeout retries).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            create_private_file(Path(path))
        engine = create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
            cur = dbapi_conn.cursor()
            # The busy timeout first: switching a new file to WAL takes a lock, and several
            # processes opening it at once must wait for each other, not fail.
            cur.execute("PRAGMA busy_timeout=60000")
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
