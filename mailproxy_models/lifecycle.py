"""A message's life, as one transition table; nothing else writes ``Message.status``.

    pending ──250──▶ sent
       │  └──5xx──▶ error
       └──4xx / timeout──▶ deferred ──(retry due)──▶ sent | deferred | error
    error | deferred ──(operator asks for a retry)──▶ pending

Recording is idempotent in the way a crash needs: a message already final keeps its status
and only gains the event (a worker that lost its lease may deliver a second time, and the
record says so).

With several recipients, each has its own outcome (``recipients.py``); the message waits
(``deferred``) while any recipient was refused only for now, and is final once every
recipient is: ``sent`` when at least one accepted it, ``error`` when none did.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from .accounts import Account
from .db import now
from .delivery_totals import Outcome, count_outcomes
from .events import MessageEvent
from .inbound import BouncePolicy, record_synchronous_refusal
from .messages import DEFERRED, ERROR, PENDING, SENT, Message
from .recipients import (
    ACCEPTED,
    REFUSED,
    as_list,
    give_up,
    merge,
    overall_kind,
    recipient_outcome,
    summary,
)
from .send_log import SendLogEntry
from .tenants import Tenant

# How long a failing account's messages wait before its next try.
ACCOUNT_FAILURE_DELAY = 60

# Back to pending only by ``retry_messages``: an attempt's outcome is never pending.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({SENT, DEFERRED, ERROR}),
    DEFERRED: frozenset({SENT, DEFERRED, ERROR, PENDING}),
    SENT: frozenset(),
    ERROR: frozenset({PENDING}),
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
    # This attempt's answer per recipient address (recipients.recipient_outcome); None for
    # an outcome that spent no attempt ("account").
    recipients: dict[str, dict[str, Any]] | None = None


def for_each_recipient(outcome: AttemptOutcome, addresses: list[str]) -> AttemptOutcome:
    """An outcome of the whole attempt (the server never answered for each recipient: no
    connection, MAIL FROM refused, the message could not be built) as every tried
    recipient's own; an outcome with per-recipient answers is kept as it is."""
    if outcome.recipients is not None or outcome.kind == "account":
        return outcome
    status = {"sent": ACCEPTED, "permanent": "refused"}.get(outcome.kind, "deferred")
    return replace(
        outcome,
        recipients={
            address: recipient_outcome(
                status, outcome.smtp_code, outcome.enhanced_status, outcome.smtp_text
            )
            for address in addresses
        },
    )


def retry_delay(schedule: list[int], attempts: int) -> int | None:
    """Seconds before the next try after ``attempts`` failed tries, None when out of retries."""
    return schedule[attempts - 1] if 0 < attempts <= len(schedule) else None


@dataclass
class Bookkeeping:
    """What recording outcomes owes besides the messages, their events and send-log rows:
    the delivery totals and the accounts' health. Kept apart so that a worker recording
    message by message writes it once per group of messages."""

    current: float = 0.0
    counted: list[Outcome] = field(default_factory=list)
    failing: dict[tuple[str, str], str] = field(default_factory=dict)
    healthy: set[tuple[str, str]] = field(default_factory=set)
    messages: int = 0

    def add(self, other: Bookkeeping) -> None:
        self.current = max(self.current, other.current)
        self.counted += other.counted
        self.failing.update(other.failing)
        self.healthy |= other.healthy
        self.messages += other.messages


def record_attempts(
    session: Session,
    outcomes: dict[int, AttemptOutcome],
    worker: str,
    retry_schedule: list[int],
    current: float | None = None,
) -> None:
    """Apply the outcomes of one delivery batch (keyed by message pk) in the session.

    Bulk statements whatever the batch size: UPDATE the messages by primary key, INSERT
    their events, INSERT the send-log rows of those handed to a server, add the outcomes to
    the delivery totals (``delivery_totals.count_outcomes``).
    """
    write_bookkeeping(session, apply_attempts(session, outcomes, worker, retry_schedule, current))


def write_bookkeeping(session: Session, owed: Bookkeeping) -> None:
    _note_account_health(session, owed.failing, owed.healthy, owed.current)
    count_outcomes(session, owed.counted)


def apply_attempts(
    session: Session,
    outcomes: dict[int, AttemptOutcome],
    worker: str,
    retry_schedule: list[int],
    current: float | None = None,
    tenant_schedules: dict[str, list[int] | None] | None = None,
    bounce_policy: BouncePolicy | None = None,
) -> Bookkeeping:
    """The part of ``record_attempts`` that cannot wait: the messages' new state and their
    events. Returns the bookkeeping still owed (``write_bookkeeping``).

    ``tenant_schedules`` (tenant id -> its own retry schedule, or None) spares the look-up
    to a caller that records a batch message by message and already read them.

    A recipient the server refused for good gets the reason a bounce with the same words
    would get, and the same suppression decision (``bounce_policy``: when soft ones count)."""
    current = now() if current is None else current
    if not outcomes:
        return Bookkeeping(current)
    rows = session.execute(
        select(
            Message.pk,
            Message.status,
            Message.attempts,
            Message.tenant_id,
            Message.account_id,
            Message.created_at,
            Message.recipient_outcomes,
            # When the client scheduled it: latency counts from then, not from creation.
            Message.payload["deferred_ts"].as_float().label("scheduled_ts"),
        ).where(Message.pk.in_(list(outcomes)))
    ).all()
    tenant_ids = {row.tenant_id for row in rows}
    schedules = tenant_schedules
    if schedules is None or not tenant_ids <= set(schedules):
        schedules = tenant_retry_schedules(session, tenant_ids)
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    sends: list[dict[str, Any]] = []
    counted: list[Outcome] = []
    for row in rows:
        schedule = schedules.get(row.tenant_id) or retry_schedule
        outcome, recipients = _with_recipients(row, outcomes[row.pk], schedule, current)
        if recipients is not None:
            _classify_refusals(session, row, outcomes[row.pk], recipients, bounce_policy, current)
        changes, event = transition(row.status, row.attempts, outcome, schedule, current)
        if recipients is not None and "status" in changes:  # a final message keeps its own
            changes["recipient_outcomes"] = recipients
        updates.append({"pk": row.pk, **changes})
        events.append({"message_pk": row.pk, "worker": worker, **event})
        if "status" in changes:  # a message already final is not counted twice
            kind = {SENT: "sent", ERROR: "failed"}.get(changes["status"], "deferred")
            due_from = max(row.created_at, row.scheduled_ts or 0.0)
            latency = current - due_from if kind == "sent" else None
            counted.append(Outcome(row.tenant_id, row.account_id, kind, latency))
        if _handed_over(outcomes[row.pk]):
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
        # With the message, not with the bookkeeping: a message whose claim is cleared must
        # already count in its account's rate-limit windows, or a busy fleet overshoots.
        session.execute(insert(SendLogEntry), sends)
    owed = Bookkeeping(current, counted, messages=len(rows))
    for row in rows:
        key = (row.tenant_id, row.account_id)
        if outcomes[row.pk].kind == "account":
            owed.failing[key] = outcomes[row.pk].description
        elif _handed_over(outcomes[row.pk]):
            owed.healthy.add(key)
    return owed


def _classify_refusals(
    session: Session,
    row: Any,
    attempt: AttemptOutcome,
    recipients: dict[str, Any],
    policy: BouncePolicy | None,
    current: float,
) -> None:
    """Recipients this attempt's server refused for good (a 5xx at RCPT TO or DATA): the
    bounce reason and type on their outcome, the address suppressed when the reason says
    so (``inbound.record_synchronous_refusal``)."""
    at_rcpt = (attempt.details or {}).get("refused_recipients") or {}
    for address, answer in (attempt.recipients or {}).items():
        code = answer.get("smtp_code")
        if answer.get("status") != REFUSED or not isinstance(code, int) or not 500 <= code < 600:
            continue
        refusal = record_synchronous_refusal(
            session,
            row.tenant_id,
            row.pk,
            address,
            code,
            answer.get("enhanced_status"),
            answer.get("smtp_text"),
            command="RCPT" if address in at_rcpt else "DATA",
            current=current,
            policy=policy or BouncePolicy(),
        )
        if address in recipients:
            recipients[address] = {
                **recipients[address],
                "reason": refusal.reason,
                "bounce_type": refusal.bounce_type,
            }


def tenant_retry_schedules(session: Session, tenant_ids: set[str]) -> dict[str, list[int] | None]:
    """Each tenant's own retry schedule (None: the instance's)."""
    return dict(
        session.execute(  # type: ignore[arg-type]
            select(Tenant.id, Tenant.retry_schedule).where(Tenant.id.in_(tenant_ids))
        ).all()
    )


def _note_account_health(
    session: Session,
    failing: dict[tuple[str, str], str],
    healthy: set[tuple[str, str]],
    current: float,
) -> None:
    """An account whose authentication failed is marked failing, with the reason; one that
    sent a message is healthy again."""
    for (tenant_id, account_id), reason in failing.items():
        account = session.get(Account, (tenant_id, account_id))
        if account is not None:
            account.failing_since = account.failing_since or current
            account.failing_reason = reason
    for tenant_id, account_id in healthy - set(failing):
        account = session.get(Account, (tenant_id, account_id))
        if account is not None and account.failing_since is not None:
            account.failing_since = account.failing_reason = None


def _handed_over(outcome: AttemptOutcome) -> bool:
    """Whether this attempt handed the message to the server for at least one recipient."""
    if outcome.recipients is None:
        return outcome.kind == "sent"
    return any(answer["status"] == ACCEPTED for answer in outcome.recipients.values())


def _with_recipients(
    row: Any, outcome: AttemptOutcome, schedule: list[int], current: float
) -> tuple[AttemptOutcome, dict[str, Any] | None]:
    """The attempt's outcome as it reads for the whole message, with the recipients'
    outcomes after it: a recipient accepted earlier makes a later refusal of the others
    end ``sent``; one refused for now keeps the message waiting until retries are spent,
    then it is refused for good."""
    if outcome.recipients is None:
        return outcome, None
    merged = merge(row.recipient_outcomes, outcome.recipients, current)
    kind = overall_kind(merged)
    if kind == "temporary" and retry_delay(schedule, row.attempts + 1) is None:
        merged = give_up(merged, f"gave up after {row.attempts + 1} attempts")
        kind = overall_kind(merged)
    several = len(merged) > 1
    description = summary(merged) if several and kind != outcome.kind else outcome.description
    if kind == "permanent" and outcome.kind == "temporary":
        description = f"gave up after {row.attempts + 1} attempts: {outcome.description}"
    details = {**outcome.details, "recipients": as_list(outcome.recipients)}
    return replace(outcome, kind=kind, description=description, details=details), merged  # type: ignore[arg-type]


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
            changes.update(sent_ts=current, error=None)
            if outcome.smtp_message_id:  # stored at enqueue; older messages get it here
                changes["smtp_message_id"] = outcome.smtp_message_id
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
    # One UPDATE for all (the changes are the same); RETURNING says whose they are, for the
    # delivery totals.
    owners = session.execute(
        update(Message)
        .where(Message.pk.in_(pks))
        .values(**changes)
        .returning(Message.tenant_id, Message.account_id)
        .execution_options(synchronize_session=False)
    ).all()
    total_kind = "failed" if kind == "error" else "rate_limited"
    count_outcomes(session, [(r.tenant_id, r.account_id, total_kind) for r in owners])
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


@dataclass
class RetryResult:
    retried: int = 0
    not_found: list[str] = field(default_factory=list)
    not_retryable: list[dict[str, str]] = field(default_factory=list)
    # Priorities that got messages due now: the caller wakes a worker for each.
    due_priorities: set[int] = field(default_factory=set)


def retry_messages(
    session: Session,
    tenant_id: str | None,
    ids: list[str],
    requested_by: str,
    current: float | None = None,
) -> RetryResult:
    """Put messages in ``error`` or ``deferred`` back to ``pending``, due now, with a fresh
    retry schedule (attempts reset). Ids outside the tenant (``None``: the admin, any
    tenant) are ``not_found``, so a tenant learns nothing about another's messages.

    Each retried message gets a ``deferred`` event ("retry requested by ..."), a kind the
    delivery-report protocol already knows: the client hears the message waits again, and
    the next outcome is reported afresh (the message's ``reported_ts`` is cleared, which
    also keeps retention from purging it meanwhile). Idempotent in effect: asking again
    while it waits is refused as "already pending".
    """
    current = now() if current is None else current
    result = RetryResult()
    query = select(Message).where(Message.id.in_(ids)).order_by(Message.pk)
    if tenant_id is not None:
        query = query.where(Message.tenant_id == tenant_id)
    found: dict[str, list[Message]] = {}
    for message in session.scalars(query):
        found.setdefault(message.id, []).append(message)
    description = f"retry requested by {requested_by}"
    for msg_id in dict.fromkeys(ids):
        if msg_id not in found:
            result.not_found.append(msg_id)
            continue
        for message in found[msg_id]:
            reason = _not_retryable_reason(message, current)
            if reason is not None:
                result.not_retryable.append({"id": msg_id, "reason": reason})
                continue
            message.status = PENDING
            message.attempts = 0
            message.due_at = current
            message.deferred_ts = message.error_ts = message.error = None
            message.claim_token = message.lease_until = message.reported_ts = None
            # Recipients already accepted are not sent to again; the others are retried.
            message.recipient_outcomes = {
                address: outcome
                for address, outcome in (message.recipient_outcomes or {}).items()
                if outcome.get("status") == ACCEPTED
            } or None
            session.add(
                MessageEvent(
                    message_pk=message.pk,
                    ts=current,
                    kind="deferred",
                    description=description,
                    details={"retry_at": current, "requested_by": requested_by},
                )
            )
            result.retried += 1
            result.due_priorities.add(message.priority)
    return result


def _not_retryable_reason(message: Message, current: float) -> str | None:
    if message.status == SENT:
        return "already sent; sending again would deliver it twice"
    if PENDING not in TRANSITIONS[message.status]:
        return "already pending; it will be sent without a retry"
    if message.lease_until is not None and message.lease_until > current:
        return "being delivered right now; ask again if this attempt fails"
    return None
