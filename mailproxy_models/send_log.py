"""The send log: one row per message handed to an SMTP server, the ground truth for rate limits."""

from __future__ import annotations

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, BigId


class SendLogEntry(Base):
    __tablename__ = "send_log"
    __table_args__ = (Index("ix_send_log_account_ts", "tenant_id", "account_id", "ts"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    message_pk: Mapped[int] = mapped_column(BigId, nullable=False)
    ts: Mapped[float] = mapped_column(Float, nullable=False)
