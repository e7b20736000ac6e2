"""The send log: one row per message handed to an SMTP server, the ground truth for rate limits."""

from __future__ import annotations

from sqlalchemy import Float, Index, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, BigId


class SendLogEntry(Base):
    __tablename__ = "send_log"
    __table_args__ = (Index("ix_send_log_account_ts", "tenant_id", "account_id", "ts"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    message_pk: Mapped[int] = mapped_column(BigId, nullable=False)
    ts: Mapped[float] = mapped_column(Float, nullable=False)


def sends_since(session: Session, tenant_id: str, account_id: str, since: float) -> int:
    """How many messages the account handed to its server since ``since``."""
    query = select(func.count(SendLogEntry.pk)).where(
        SendLogEntry.tenant_id == tenant_id,
        SendLogEntry.account_id == account_id,
        SendLogEntry.ts >= since,
    )
    return int(session.scalar(query) or 0)
