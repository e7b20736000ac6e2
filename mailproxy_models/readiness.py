"""Readiness: does the database answer, does the broker accept a connection, is a worker
taking tasks while messages are due. Bounded in time.

Each check runs in a thread of its own and all of them together wait at most ``timeout``
seconds: a server that never answers (a dropped packet, a full accept queue) makes the
check fail at the deadline instead of holding the prober. A check that finishes later
is simply forgotten.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from celery import Celery
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .worker_heartbeats import worker_state

OK = "ok"
DEFAULT_TIMEOUT = 2.0


def check_database(engine: Engine) -> None:
    """``SELECT 1`` on a connection of the pool; raises if the database does not answer."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()


def broker_check(app: Celery, timeout: float) -> Callable[[], None]:
    """A check that opens a connection to the app's broker (one try, ``timeout`` seconds)."""

    def check() -> None:
        with app.connection_for_write(connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            # A virtual transport (Redis, SQLAlchemy) talks to its server when a channel
            # opens: Redis pings, the SQLAlchemy transport connects to its database.
            conn.default_channel  # noqa: B018 - opening it is the check

    return check


def worker_check(sessions: sessionmaker[Session], stale_seconds: float) -> Callable[[], None]:
    """A check that fails when messages are due and no worker took a task recently."""

    def check() -> None:
        with sessions() as session:
            state = worker_state(session, stale_seconds)
        if not state.ok:
            raise WorkerStale(state.detail)

    return check


class WorkerStale(Exception):
    """No worker consumes while messages wait."""


def run_checks(
    checks: dict[str, Callable[[], None]], timeout: float = DEFAULT_TIMEOUT
) -> dict[str, str]:
    """Run the checks at once; each answers ``"ok"`` or what failed, within ``timeout``."""
    results: dict[str, str] = {}
    lock = threading.Lock()

    def run(name: str, check: Callable[[], None]) -> None:
        try:
            check()
            outcome = OK
        except WorkerStale as exc:
            outcome = str(exc)
        except Exception as exc:  # noqa: BLE001 - the failure is the answer
            outcome = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
        with lock:
            results[name] = outcome

    threads = [
        threading.Thread(target=run, args=(name, check), name=f"ready-{name}", daemon=True)
        for name, check in checks.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return {name: results.get(name, f"no answer within {timeout:g} s") for name in checks}
