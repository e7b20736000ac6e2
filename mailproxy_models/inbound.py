"""Mail that came back (bounces, PEC receipts), recorded once as events on the message.

The workers parse each mail into plain facts; this module finds the message they are
about and records them. Every mail read from a mailbox gets a row in ``inbound_mail``
keyed by the hash of its bytes, written in the same transaction as its events, so the
same mail read twice (a crash before it was flagged, a reset UIDVALIDITY, a copy in
another folder) records nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    false,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .addresses import envelope_recipients, stored_mailbox
from .bounce_reasons import REASONS, BounceReason, Suppression, classify_reason, is_hard
from .db import Base, BigId, insert_for, now
from .delivery_totals import BOUNCED, Outcome, count_outcomes
from .events import MessageEvent
from .messages import Message
from .suppression_list import count_soft_bounce, normalize_address, suppress
from .verp import VerpTag

# A receipt's own timestamp is used for its event unless it is this far from our clock.
MAX_CLOCK_SKEW = 7 * 86400

MAIL_KINDS = ("bounce", "pec_receipt", "auto_reply", "not_recognised", "unparseable")
OUTCOMES = ("recorded", "duplicate", "uncorrelated", "ignored")


class InboundMail(Base):
    __tablename__ = "inbound_mail"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mail_key", name="uq_inbound_mail_key"),
        # GET /inbound-mail: one tenant's log, newest first.
        Index("ix_inbound_mail_tenant_pk", "tenant_id", "pk"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    mail_key: Mapped[str] = mapped_column(String(64), nullable=False)  # sha256 of the bytes
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    message_pk: Mapped[int | None] = mapped_column(BigId)  # kept if the message is deleted
    received_at: Mapped[float] = mapped_column(Float, nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class Correlation:
    """What a returned mail says about the message it is about."""

    ids: tuple[str, ...] = ()  # X-Mailproxy-ID / X-Genro-Mail-ID: the client's message id
    message_ids: tuple[str, ...] = ()  # Message-ID header of the original
    verp_tags: tuple[VerpTag, ...] = ()  # from a VERP return path: message pk and token


@dataclass(frozen=True)
class InboundEvent:
    kind: str  # bounce | pec_acceptance | pec_delivery | pec_error
    description: str
    recipients: tuple[str, ...] = ()
    smtp_code: int | None = None
    enhanced_status: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ts: float | None = None
    hard_bounce: bool = False  # its recipients go on the suppression list


@dataclass(frozen=True)
class InboundFacts:
    kind: str  # one of MAIL_KINDS
    summary: str
    correlation: Correlation = Correlation()
    events: tuple[InboundEvent, ...] = ()


@dataclass(frozen=True)
class BouncePolicy:
    """When soft bounces count as a hard one: ``soft_limit`` within ``soft_window`` seconds
    (0: never)."""

    soft_limit: int = 0
    soft_window: float = 7 * 86400.0


@dataclass(frozen=True)
class RecordResult:
    outcome: str  # one of OUTCOMES
    message_pk: int | None = None
    events: int = 0
    suppressed: tuple[str, ...] = ()
    message_id: str | None = None  # the client's id of the message


def record_inbound_mail(
    session: Session,
    tenant_id: str,
    account_id: str,
    mail_key: str,
    facts: InboundFacts,
    current: float,
    policy: BouncePolicy = BouncePolicy(),
) -> RecordResult:
    """Record one mail read from the account's mailbox; safe to call twice with the same."""
    taken = session.execute(
        insert_for(session, InboundMail)
        .values(
            tenant_id=tenant_id,
            account_id=account_id,
            mail_key=mail_key,
            kind=facts.kind,
            outcome="ignored",
            received_at=current,
            summary=facts.summary[:2000],
        )
        .on_conflict_do_nothing()
        .returning(InboundMail.pk)
    ).scalar()
    if taken is None:
        return RecordResult("duplicate")
    if not facts.events:
        return RecordResult("ignored")
    message = find_correlated(session, tenant_id, facts.correlation)
    result = (
        _record_events(session, message, facts.events, current, policy)
        if message is not None
        else RecordResult("uncorrelated")
    )
    session.execute(
        update(InboundMail)
        .where(InboundMail.pk == taken)
        .values(outcome=result.outcome, message_pk=result.message_pk)
    )
    return result


def find_correlated(session: Session, tenant_id: str, correlation: Correlation) -> Message | None:
    """The tenant's message a returned mail is about: by VERP, by our header, by Message-ID.
    Never another tenant's, whatever the mail claims."""
    candidates = [
        (_verp_matches(correlation.verp_tags), bool(correlation.verp_tags)),
        (Message.id.in_(correlation.ids), bool(correlation.ids)),
        (
            Message.smtp_message_id.in_(_id_forms(correlation.message_ids)),
            bool(correlation.message_ids),
        ),
    ]
    for condition, usable in candidates:
        if usable:
            query = select(Message).where(Message.tenant_id == tenant_id, condition).limit(1)
            message = session.scalar(query)
            if message is not None:
                return message
    return None


def _verp_matches(tags: tuple[VerpTag, ...]) -> Any:
    """A VERP address names a message only with the message's own token; an address
    without one names only a message stored before tokens (an old message's bounce)."""
    if not tags:
        return false()
    return or_(
        *(
            and_(
                Message.pk == tag.message_pk,
                Message.verp_token == tag.token if tag.token else Message.verp_token.is_(None),
            )
            for tag in tags
        )
    )


def _id_forms(message_ids: tuple[str, ...]) -> list[str]:
    """A Message-ID with and without its angle brackets: providers quote it either way."""
    forms: set[str] = set()
    for value in message_ids:
        bare = value.strip().strip("<>").strip()
        if bare:
            forms.update({bare, f"<{bare}>"})
    return sorted(forms)


def _record_events(
    session: Session,
    message: Message,
    events: tuple[InboundEvent, ...],
    current: float,
    policy: BouncePolicy,
) -> RecordResult:
    ours = message_recipients(message)
    rows, suppressed = [], []
    for event in events:
        matched = _matched_recipients(message, event, ours)
        details = dict(event.details)
        if event.recipients and not matched:
            # A forwarding address or a forged bounce: report it, but suppress nothing.
            details["recipient_unmatched"] = True
        elif not event.recipients and matched:
            details["recipient"] = matched[0]  # the message's only recipient
        for address, reason in _to_suppress(session, message, event, matched, current, policy):
            if suppress(session, message.tenant_id, address, "bounce", reason, message.id, current):
                suppressed.append(normalize_address(address))
        ts = event.ts if event.ts and abs(event.ts - current) < MAX_CLOCK_SKEW else current
        rows.append(
            {
                "message_pk": message.pk,
                "ts": ts,
                "kind": event.kind,
                "description": event.description[:4000],
                "smtp_code": event.smtp_code,
                "enhanced_status": event.enhanced_status,
                "details": details or None,
            }
        )
    session.execute(insert(MessageEvent), rows)
    bounces = [e for e in events if e.kind == "bounce"]
    count_outcomes(
        session, [Outcome(message.tenant_id, message.account_id, BOUNCED)] * len(bounces)
    )
    return RecordResult("recorded", message.pk, len(rows), tuple(suppressed), message.id)


def _matched_recipients(message: Message, event: InboundEvent, ours: set[str]) -> list[str]:
    """The event's recipients that the message was sent to, never its sender. A bounce that
    names no recipient is about the message's only recipient, if it had one only."""
    sender = message_sender(message)
    if event.recipients:
        return [
            r
            for r in event.recipients
            if normalize_address(r) in ours and normalize_address(r) != sender
        ]
    if event.kind == "bounce" and len(ours) == 1 and sender not in ours:
        return sorted(ours)
    return []


def _to_suppress(
    session: Session,
    message: Message,
    event: InboundEvent,
    matched: list[str],
    current: float,
    policy: BouncePolicy,
) -> list[tuple[str, str]]:
    """The recipients this event puts on the suppression list, each with the reason.

    The bounce's reason decides (docs/bounces.md): an address that does not exist at once,
    one with a full or disabled mailbox once it reached the policy's soft-bounce limit, and
    never one whose mail was refused for what the message or its sender did (spam, policy,
    authentication, a blocked server). Events of older versions carry no reason: their hard
    or soft type decides.
    """
    if event.kind != "bounce":
        return []
    reason = f"{event.enhanced_status or event.smtp_code or 'bounce'}: {event.description}"
    decision = suppression_of(event.details.get("reason"), event.hard_bounce)
    if decision is Suppression.AT_ONCE:
        return [(address, reason) for address in matched]
    if decision is Suppression.NEVER:
        return []
    return [
        (address, why)
        for address in matched
        if (why := _counted(session, message.tenant_id, address, reason, current, policy))
    ]


def suppression_of(reason: object, hard: bool) -> Suppression:
    """What a bounce does to its recipient's address, from its reason and whether it is hard."""
    try:
        rule = REASONS[BounceReason(str(reason))]
    except ValueError:  # an event recorded before reasons existed
        return Suppression.AT_ONCE if hard else Suppression.REPEATED
    if rule.suppression is Suppression.AT_ONCE and not hard:
        return Suppression.REPEATED  # a "user unknown" the server still retries
    return rule.suppression


def _counted(
    session: Session,
    tenant_id: str,
    address: str,
    reason: str,
    current: float,
    policy: BouncePolicy,
) -> str | None:
    """Count one soft bounce of the address; the suppression reason once it reached the limit."""
    count = count_soft_bounce(
        session, tenant_id, address, reason, policy.soft_limit, policy.soft_window, current
    )
    if policy.soft_limit and count >= policy.soft_limit:
        days = policy.soft_window / 86400
        return f"{count} soft bounces within {days:g} days, last {reason}"
    return None


def message_recipients(message: Message) -> set[str]:
    return {normalize_address(address) for address in envelope_recipients(message.payload)}


def message_sender(message: Message) -> str:
    sender = message.payload.get("from")
    return normalize_address(stored_mailbox(sender)["address"]) if sender else ""


def purge_inbound_log(session: Session, older_than: float, limit: int = 1000) -> int:
    """Forget up to ``limit`` mails read before ``older_than``; returns how many. A mail
    forgotten and read again (its mailbox's UIDVALIDITY changed) would be recorded again."""
    pks = list(
        session.scalars(
            select(InboundMail.pk).where(InboundMail.received_at < older_than).limit(limit)
        )
    )
    if pks:
        session.execute(delete(InboundMail).where(InboundMail.pk.in_(pks)))
    return len(pks)


@dataclass(frozen=True)
class RefusalOutcome:
    """What a permanent refusal during delivery means for its recipient."""

    reason: str  # a BounceReason value
    bounce_type: str  # hard | soft
    suppressed: bool  # the address went on the suppression list now
    details: dict[str, Any]  # to merge into the details of the event the caller records


def record_synchronous_refusal(
    session: Session,
    tenant_id: str,
    message_pk: int,
    address: str,
    code: int | None,
    enhanced: str | None,
    text: str | None,
    *,
    command: str = "RCPT",
    current: float | None = None,
    policy: BouncePolicy = BouncePolicy(),
) -> RefusalOutcome:
    """A permanent refusal of ``address`` (RCPT or DATA answered 5xx) while the message was
    being sent: the same reason and the same suppression decision as a bounce saying the
    same words would get. Suppresses only a recipient of this tenant's message, never its
    sender. Records no event: the caller records the refusal with ``details`` added."""
    at = current if current is not None else now()
    reason = classify_reason(code, enhanced, text, command)
    hard = is_hard(reason, "failed")
    details: dict[str, Any] = {
        "bounce_type": "hard" if hard else "soft",
        "reason": reason.value,
        "recipient": normalize_address(address),
        "command": command.upper(),
    }
    message = session.get(Message, message_pk)
    if message is None or message.tenant_id != tenant_id:
        return RefusalOutcome(reason.value, details["bounce_type"], False, details)
    event = InboundEvent(
        kind="bounce",
        description=" ".join((text or "").split())[:4000] or f"{code or ''} {enhanced or ''}",
        recipients=(address,),
        smtp_code=code,
        enhanced_status=enhanced,
        details=details,
        hard_bounce=hard,
    )
    matched = _matched_recipients(message, event, message_recipients(message))
    suppressed = False
    for listed, why in _to_suppress(session, message, event, matched, at, policy):
        suppressed |= suppress(session, tenant_id, listed, "bounce", why, message.id, at)
    return RefusalOutcome(reason.value, details["bounce_type"], suppressed, details)
