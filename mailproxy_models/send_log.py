"""The send log: one row per message handed to an SMTP server, the ground truth for rate limits.

Only the longest rate window is ever read, so retention deletes what is older than that
(``purge_send_log``): the table holds a day of sends, not the whole history.
"""

from __future__ import annotations

from sqlalchemy import Float, Index, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, BigId


class SendLogEntry(Base):
    __tablename__ = "send_log"
    __table_args__ = (
        Index("ix_send_log_account_ts", "tenant_id", "account_id", "ts"),
        # A tenant's limits count the sends of all its accounts in a window.
        Index("ix_send_log_tenant_ts", "tenant_id", "ts"),
        # Retention deletes the oldest.
        Index("ix_send_log_ts", "ts"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    message_pk: Mapped[int] = mapped_column(BigId, nullable=False)
    ts: Mapped[float] = mapped_column(Float, nullable=False)


def purge_send_log(session: Session, older_than: float, limit: int = 5000) -> int:
    """Delete up to ``limit`` send-log rows stamped before ``older_than``; returns how many.
    Callers pass a time past the longest rate window, so no limit loses a send it counts."""
    oldest = select(SendLogEntry.pk).where(SendLogEntry.ts < older_than).limit(limit)
    pks = list(session.scalars(oldest))
    if pks:
        session.execute(delete(SendLogEntry).where(SendLogEntry.pk.in_(pks)))
    return len(pks)
