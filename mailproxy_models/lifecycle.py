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

from .accounts import Account
from .db import now
from .events import MessageEvent
from .messages import DEFERRED, ERROR, PENDING, SENT, Message
from .send_log import SendLogEntry
from .tenants import Tenant

# How long a failing account's messages wait before its next try.
ACCOUNT_FAILURE_DELAY = 60

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({SENT, DEFERRED, ERROR}),
    DEFERRED: frozenset({SENT, DEFERRED, ERROR}),
    SENT: frozenset(),
    ERROR: frozenset(),
}

# "account": the account failed (authentication), not the message: the message waits for
# the account without spending an attempt.
OutcomeKind = Literal["sent", "temporary", "permanent", "account"]


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
    tenant_ids = {row.tenant_id for row in rows}
    schedules = dict(
        session.execute(
            select(Tenant.id, Tenant.retry_schedule).where(Tenant.id.in_(tenant_ids))
        ).all()
    )
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    sends: list[dict[str, Any]] = []
    for row in rows:
        outcome = outcomes[row.pk]
        schedule = schedules.get(row.tenant_id) or retry_schedule
        changes, event = transition(row.status, row.attempts, outcome, schedule, current)
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
    _note_account_health(session, rows, outcomes, current)
    session.execute(insert(MessageEvent), events)
    if sends:
        session.execute(insert(SendLogEntry), sends)


def _note_account_health(
    session: Session, rows: Any, outcomes: dict[int, AttemptOutcome], current: float
) -> None:
    """An account whose authentication failed is marked failing, with the reason; one that
    sent a message is healthy again."""
    failing: dict[tuple[str, str], str] = {}
    healthy: set[tuple[str, str]] = set()
    for row in rows:
        key = (row.tenant_id, row.account_id)
        if outcomes[row.pk].kind == "account":
            failing[key] = outcomes[row.pk].description
        elif outcomes[row.pk].kind == "sent":
            healthy.add(key)
    for (tenant_id, account_id), reason in failing.items():
        account = session.get(Account, (tenant_id, account_id))
        if account is not None:
            account.failing_since = account.failing_since or current
            account.failing_reason = reason
    for tenant_id, account_id in healthy - set(failing):
        account = session.get(Account, (tenant_id, account_id))
        if account is not None and account.failing_since is not None:
            account.failing_since = account.failing_reason = None


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
    if outcome.kind != "account":
        attempts += 1
    changes: dict[str, Any] = {"claim_token": None, "lease_until": None, "attempts": attempts}
    kind, description = outcome.kind, outcome.description
    target = {"sent": SENT, "permanent": ERROR}.get(kind, DEFERRED)
    if kind == "account":
        delay: int | None = ACCOUNT_FAILURE_DELAY
    else:
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
