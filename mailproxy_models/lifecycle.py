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

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from .db import now
from .events import MessageEvent
from .messages import DEFERRED, ERROR, PENDING, SENT, Message
from .send_log import SendLogEntry

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
    """Apply the outcomes of one delivery batch (keyed by message pk) in the session.

    Three bulk statements whatever the batch size: UPDATE the messages by primary key,
    INSERT their events, INSERT the send-log rows of those handed to a server.
    """
    current = now() if current is None else current
    if not outcomes:
        return
    rows = session.execute(
        select(
            Message.pk, Message.status, Message.attempts, Message.tenant_id, Message.account_id
        ).where(Message.pk.in_(list(outcomes)))
    ).all()
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    sends: list[dict[str, Any]] = []
    for row in rows:
        outcome = outcomes[row.pk]
        changes, event = transition(row.status, row.attempts, outcome, retry_schedule, current)
        updates.append({"pk": row.pk, **changes})
        events.append({"message_pk": row.pk, "worker": worker, **event})
        if outcome.kind == "sent":
            sends.append(
                {
                    "tenant_id": row.tenant_id,
                    "account_id": row.account_id,
                    "message_pk": row.pk,
                    "ts": current,
                }
            )
    for same_columns in _group_by_keys(updates):
        session.execute(update(Message), same_columns)
    session.execute(insert(MessageEvent), events)
    if sends:
        session.execute(insert(SendLogEntry), sends)


def transition(
    status: str,
    attempts: int,
    outcome: AttemptOutcome,
    retry_schedule: list[int],
    current: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The column changes and the event one attempt's outcome makes. Pure: no I/O.

    A message already final (delivered a second time after its worker lost the lease)
    keeps its status; only the event records what happened.
    """
    attempts += 1
    changes: dict[str, Any] = {"claim_token": None, "lease_until": None, "attempts": attempts}
    kind, description = outcome.kind, outcome.description
    target = {"sent": SENT, "permanent": ERROR}.get(kind, DEFERRED)
    delay = retry_delay(retry_schedule, attempts) if target == DEFERRED else None
    if target == DEFERRED and delay is None:
        target, kind = ERROR, "permanent"
        description = f"gave up after {attempts} attempts: {outcome.description}"
    if target not in TRANSITIONS[status]:
        description = f"{description} (message was already {status})"
    else:
        changes["status"] = target
        if target == SENT:
            changes.update(sent_ts=current, smtp_message_id=outcome.smtp_message_id, error=None)
        elif target == ERROR:
            changes.update(error_ts=current, error=description)
        else:
            changes.update(deferred_ts=current + (delay or 0), due_at=current + (delay or 0))
    event = {
        "ts": current,
        "kind": {"sent": "sent", "permanent": "error"}.get(kind, "deferred"),
        "description": description,
        "smtp_code": outcome.smtp_code,
        "enhanced_status": outcome.enhanced_status,
        "smtp_text": outcome.smtp_text,
        "details": outcome.details or None,
    }
    if changes.get("status") == DEFERRED:  # the client's report says when we try again
        event["details"] = {**(outcome.details or {}), "retry_at": changes["deferred_ts"]}
    return changes, event


def _group_by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows with the same columns together, so each group is one executemany."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def hold_over_limit(
    session: Session, pks: list[int], behavior: str, free_at: float, current: float
) -> None:
    """Messages over their account's rate limit: deferred to ``free_at`` (no attempt is
    spent) or, with ``limit_behavior`` reject, ended in error."""
    if behavior == "reject":
        reason = "refused: the account's rate limit is reached (limit_behavior reject)"
        changes: dict[str, Any] = {"status": ERROR, "error_ts": current, "error": reason}
        kind = "error"
    else:
        reason = "rate limit of the account reached; waiting for the window to free up"
        changes = {"status": DEFERRED, "deferred_ts": free_at, "due_at": free_at}
        kind = "rate_limited"
    session.execute(update(Message), [{"pk": pk, **changes} for pk in pks])
    details = {"retry_at": free_at} if kind == "rate_limited" else None
    session.execute(
        insert(MessageEvent),
        [
            {
                "message_pk": pk,
                "ts": current,
                "kind": kind,
                "description": reason,
                "details": details,
            }
            for pk in pks
        ],
    )
