"""Worker heartbeats: when each worker last took a task from the broker.

A worker writes its row when it starts a task (at most once every few seconds), so the
row proves the worker consumes, not merely that its process exists. Readiness reads the
newest row: when messages are due and no worker has taken a task for longer than
``MAILPROXY_READY_WORKER_STALE_SECONDS``, the queue is not moving. The same table works for
one embedded worker on SQLite and for a fleet on PostgreSQL and Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Float, Integer, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, now
from .messages import WAITING, Message

# Rows of workers gone for this long are removed (autoscaled fleets name a new node each time).
FORGET_AFTER_SECONDS = 7 * 86400


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(255), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    last_task_at: Mapped[float] = mapped_column(Float, nullable=False)


@dataclass(frozen=True)
class WorkerState:
    ok: bool
    detail: str


def record_heartbeat(session: Session, worker: str, pid: int, at: float | None = None) -> None:
    """Say that ``worker`` took a task at ``at`` (now by default)."""
    at = now() if at is None else at
    changed = session.execute(
        update(WorkerHeartbeat)
        .where(WorkerHeartbeat.worker == worker)
        .values(pid=pid, last_task_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        try:
            with session.begin_nested():
                session.add(WorkerHeartbeat(worker=worker, pid=pid, last_task_at=at))
        except IntegrityError:
            pass  # another process of the same worker inserted it first: its time will do
    session.execute(
        delete(WorkerHeartbeat).where(WorkerHeartbeat.last_task_at < at - FORGET_AFTER_SECONDS)
    )


def worker_state(
    session: Session, stale_seconds: float, current: float | None = None
) -> WorkerState:
    """Not ok when a message is due and no worker has taken a task within ``stale_seconds``;
    the detail names the worker seen last and how long ago."""
    current = now() if current is None else current
    newest = session.execute(
        select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_task_at.desc()).limit(1)
    ).scalar_one_or_none()
    if newest is not None and current - newest.last_task_at <= stale_seconds:
        return WorkerState(True, "ok")
    due = select(Message.pk).where(Message.status.in_(WAITING), Message.due_at <= current)
    if session.scalar(due.limit(1)) is None:
        return WorkerState(True, "ok")
    if newest is None:
        return WorkerState(False, "messages are due and no worker has ever taken a task")
    age = current - newest.last_task_at
    return WorkerState(
        False,
        f"messages are due and no worker has taken a task for {age:.0f} s "
        f"(last: {newest.worker}, pid {newest.pid}; limit {stale_seconds:g} s)",
    )
