"""Message events: every attempt and every later happening, in order, with the server's words."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, BigId, now

EVENT_KINDS = (
    "sent",
    "error",
    "deferred",
    "rate_limited",
    "bounce",
    "pec_acceptance",
    "pec_delivery",
    "pec_error",
    "pec_timeout",
)


class MessageEvent(Base):
    __tablename__ = "message_events"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_pk: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.pk", ondelete="CASCADE"), index=True, nullable=False
    )
    ts: Mapped[float] = mapped_column(Float, default=now, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    enhanced_status: Mapped[str | None] = mapped_column(String(16))
    smtp_text: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reported_ts: Mapped[float | None] = mapped_column(Float)


def events_of(session: Session, message_pks: list[int]) -> dict[int, list[MessageEvent]]:
    """Events of several messages at once, oldest first, keyed by message pk."""
    grouped: dict[int, list[MessageEvent]] = {pk: [] for pk in message_pks}
    if not message_pks:
        return grouped
    query = (
        select(MessageEvent)
        .where(MessageEvent.message_pk.in_(message_pks))
        .order_by(MessageEvent.message_pk, MessageEvent.pk)
    )
    for event in session.scalars(query):
        grouped[event.message_pk].append(event)
    return grouped


def event_record(event: MessageEvent) -> dict[str, Any]:
    return {
        "ts": int(event.ts),
        "kind": event.kind,
        "description": event.description,
        "smtp_code": event.smtp_code,
        "enhanced_status": event.enhanced_status,
        "smtp_text": event.smtp_text,
        "worker": event.worker,
        "details": event.details,
        "reported_ts": int(event.reported_ts) if event.reported_ts else None,
    }
