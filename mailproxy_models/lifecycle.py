"""A message's life, as one transition table; nothing else writes ``Message.status``.

    pending ──250──▶ sent
       │  └──5xx──▶ error
       └──4xx / timeout──▶ deferred ──(retry due)──▶ sent | deferred | error

Recording is idempotent in the way a crash needs: a message already final keeps its status
and only gains the event (a worker that lost its lease may deliver a second time, and the
record says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import now
from .events import MessageEvent
from .messages import DEFERRED, ERROR, PENDING, SENT, Message
from .send_log import record_send

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({SENT, DEFERRED, ERROR}),
    DEFERRED: frozenset({SENT, DEFERRED, ERROR}),
    SENT: frozenset(),
    ERROR: frozenset(),
}

OutcomeKind = Literal["sent", "temporary", "permanent"]


@dataclass(frozen=True)
class AttemptOutcome:
    """What one SMTP attempt for one message ended in, with the server's own words."""

    kind: OutcomeKind
    description: str
    smtp_code: int | None = None
    enhanced_status: str | None = None
    smtp_text: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    smtp_message_id: str | None = None


def retry_delay(schedule: list[int], attempts: int) -> int | None:
    """Seconds before the next try after ``attempts`` failed tries, None when out of retries."""
    return schedule[attempts - 1] if 0 < attempts <= len(schedule) else None


def record_attempts(
    session: Session,
    outcomes: dict[int, AttemptOutcome],
    worker: str,
    retry_schedule: list[int],
    current: float | None = None,
) -> None:
    """Apply the outcomes of one delivery batch (keyed by message pk) in the session."""
    current = now() if current is None else current
    if not outcomes:
        return
    messages = session.scalars(select(Message).where(Message.pk.in_(list(outcomes))))
    for message in messages:
        _apply(session, message, outcomes[message.pk], worker, retry_schedule, current)


def _apply(
    session: Session,
    message: Message,
    outcome: AttemptOutcome,
    worker: str,
    retry_schedule: list[int],
    current: float,
) -> None:
    message.claim_token = None
    message.lease_until = None
    message.attempts += 1
    kind = outcome.kind
    description = outcome.description
    target = {"sent": SENT, "permanent": ERROR}.get(kind, DEFERRED)
    if target == DEFERRED:
        delay = retry_delay(retry_schedule, message.attempts)
        if delay is None:
            target, kind = ERROR, "permanent"
            description = f"gave up after {message.attempts} attempts: {outcome.description}"
        else:
            message.deferred_ts = message.due_at = current + delay
    if target not in TRANSITIONS[message.status]:
        # Already final (a second delivery after a lost lease): keep the status, log the event.
        description = f"{description} (message was already {message.status})"
    else:
        message.status = target
        if target == SENT:
            message.sent_ts = current
            message.smtp_message_id = outcome.smtp_message_id
            message.error = None
        elif target == ERROR:
            message.error_ts = current
            message.error = description
    if outcome.kind == "sent":
        record_send(session, message.tenant_id, message.account_id, message.pk, current)
    session.add(
        MessageEvent(
            message_pk=message.pk,
            ts=current,
            kind={"sent": "sent", "permanent": "error"}.get(kind, "deferred"),
            description=description,
            smtp_code=outcome.smtp_code,
            enhanced_status=outcome.enhanced_status,
            smtp_text=outcome.smtp_text,
            worker=worker,
            details=outcome.details or None,
        )
    )
