"""What came back for a message, at a glance: its latest bounce and its PEC receipts.

Computed from the message's events (the full history stays in ``events``), for many
messages in one query, so a page of messages or of delivery reports costs one more query.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .events import MessageEvent

_KINDS = ("bounce", "pec_acceptance", "pec_delivery", "pec_error")
EMPTY: dict[str, Any] = {
    "bounce_ts": None,
    "bounce_type": None,
    "bounce_category": None,
    "bounce_code": None,
    "bounce_reason": None,
    "pec_acceptance_ts": None,
    "pec_delivery_ts": None,
    "pec_error_ts": None,
    "pec_error": None,
}


def latest_returned_mail(session: Session, message_pks: list[int]) -> dict[int, dict[str, Any]]:
    """For each message: its latest bounce (time, hard or soft, reason category, code and the
    server's words) and when its PEC acceptance and delivery receipts came (or the delivery
    error); every field None when nothing came back."""
    found: dict[int, dict[str, Any]] = {pk: dict(EMPTY) for pk in message_pks}
    if not message_pks:
        return found
    query = (
        select(MessageEvent)
        .where(MessageEvent.message_pk.in_(message_pks), MessageEvent.kind.in_(_KINDS))
        .order_by(MessageEvent.message_pk, MessageEvent.ts, MessageEvent.pk)
    )
    for event in session.scalars(query):
        fold_event(found[event.message_pk], event)
    return found


def fold_event(summary: dict[str, Any], event: MessageEvent) -> None:
    """Take one event (oldest first) into a message's summary: later bounces replace earlier
    ones; the first acceptance and delivery receipts count."""
    ts = int(event.ts)
    details = event.details or {}
    if event.kind == "bounce":
        summary.update(
            bounce_ts=ts,
            bounce_type=details.get("bounce_type"),
            bounce_category=details.get("reason"),
            bounce_code=event.enhanced_status or event.smtp_code,
            bounce_reason=event.description,
        )
    elif event.kind == "pec_acceptance" and summary["pec_acceptance_ts"] is None:
        summary["pec_acceptance_ts"] = ts
    elif event.kind == "pec_delivery" and summary["pec_delivery_ts"] is None:
        summary["pec_delivery_ts"] = ts
    elif event.kind == "pec_error":
        summary["pec_error_ts"] = ts
        summary["pec_error"] = (
            details.get("error_detail") or details.get("error") or (event.description)
        )


def returned_mail_of(events: list[MessageEvent]) -> dict[str, Any]:
    """The same summary from a message's events already loaded."""
    summary = dict(EMPTY)
    ordered = sorted(events, key=lambda e: (e.ts, e.pk or 0))
    for event in ordered:
        if event.kind in _KINDS:
            fold_event(summary, event)
    return summary
