"""Messages: the queue that is the truth. Enqueue a batch, list, delete.

Claiming and outcomes live in ``claims.py`` and ``lifecycle.py``.
"""

from __future__ import annotations

import base64
import string
from dataclasses import dataclass, field
from email.utils import make_msgid
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    delete,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from .accounts import Account
from .addresses import envelope_recipients, stored_mailbox
from .db import Base, BigId, insert_for, now, unix_seconds
from .errors import InvalidInput
from .events import event_record, events_of
from .message_validation import MessageLimits, normalize_message
from .recipients import recipient_records
from .returned_mail import latest_returned_mail, returned_mail_of
from .secrets_box import SecretBox
from .suppression_list import normalize_address, refusal_reason, suppressed_among
from .tenants import Tenant, seal_client_auth
from .verp import new_verp_token

PENDING, DEFERRED, SENT, ERROR = "pending", "deferred", "sent", "error"
WAITING = (PENDING, DEFERRED)
STATUSES = (PENDING, DEFERRED, SENT, ERROR)
# The partial indexes on what is waiting carry this predicate; a query uses them only when
# its own condition is written the same way, with the values inline (``is_waiting``).
WAITING_PREDICATE = text("status IN ('pending', 'deferred')")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_messages_tenant_id_id"),
        # The claim query: waiting messages of one priority whose time has come, oldest first.
        # Partial: it holds only what is waiting, so the claim, the sweeper's probe and the
        # due counts cost the same whatever the size of the sent history.
        Index(
            "ix_messages_claim",
            "priority",
            "due_at",
            "pk",
            postgresql_where=WAITING_PREDICATE,
            sqlite_where=WAITING_PREDICATE,
        ),
        # A tenant's waiting messages in insertion order: GET /messages?active_only, and
        # /status's counts per priority from the index alone (PostgreSQL).
        Index(
            "ix_messages_waiting_tenant",
            "tenant_id",
            "pk",
            postgresql_where=WAITING_PREDICATE,
            postgresql_include=["priority"],
            sqlite_where=WAITING_PREDICATE,
        ),
        # Listings of one tenant by status, in insertion order.
        Index("ix_messages_tenant_status", "tenant_id", "status", "pk"),
        # Claimed messages only (a claim's token and lease are cleared when its outcome is
        # recorded): reading a claim back by token, and counting what is in flight for the
        # rate limits, touch only what some worker holds now.
        Index(
            "ix_messages_claim_token",
            "claim_token",
            postgresql_where=text("claim_token IS NOT NULL"),
            sqlite_where=text("claim_token IS NOT NULL"),
        ),
        Index(
            "ix_messages_in_flight",
            "tenant_id",
            "account_id",
            "lease_until",
            postgresql_where=text("claim_token IS NOT NULL"),
            sqlite_where=text("claim_token IS NOT NULL"),
        ),
        # Retention: the reported messages, oldest report first.
        Index(
            "ix_messages_reported",
            "reported_ts",
            postgresql_where=text("reported_ts IS NOT NULL"),
            sqlite_where=text("reported_ts IS NOT NULL"),
        ),
        Index("ix_messages_tenant_batch", "tenant_id", "batch_code"),
        # Receipts and bounces name the original by its Message-ID.
        Index("ix_messages_tenant_smtp_message_id", "tenant_id", "smtp_message_id"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    id: Mapped[str] = mapped_column(String(255), nullable=False)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    batch_code: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    # deferred_ts: "not before", as the client asked or as a retry set it. due_at is the same
    # instant, never null, so that the claim index covers it.
    deferred_ts: Mapped[float | None] = mapped_column(Float)
    due_at: Mapped[float] = mapped_column(Float, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    sent_ts: Mapped[float | None] = mapped_column(Float)
    error_ts: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    reported_ts: Mapped[float | None] = mapped_column(Float)
    smtp_message_id: Mapped[str | None] = mapped_column(String(998))
    # The secret part of the VERP return path (verp.py); empty for messages stored before it.
    verp_token: Mapped[str | None] = mapped_column(String(16))
    # Each envelope recipient's outcome so far, keyed by address (``recipients.py``); NULL
    # until the first attempt that reached RCPT TO.
    recipient_outcomes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def is_waiting() -> ColumnElement[bool]:
    """``status IN ('pending', 'deferred')`` with the values written into the SQL, so that
    both databases match it to the partial indexes on waiting messages (a bound parameter
    would hide the values from SQLite's planner)."""
    return Message.status.in_([literal(status, literal_execute=True) for status in WAITING])


@dataclass
class EnqueueResult:
    queued: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    # Priorities that got messages due now: the caller wakes a worker for each.
    due_priorities: set[int] = field(default_factory=set)


def enqueue_messages(
    session: Session,
    scope_tenant_id: str | None,
    payloads: list[Any],
    limits: MessageLimits,
    default_priority: int = 2,
    box: SecretBox | None = None,
) -> EnqueueResult:
    """Validate and insert a batch; invalid or duplicate messages are listed, not stored.

    ``scope_tenant_id`` is the caller's tenant (None for the admin). Idempotent per message
    id: an id the tenant already has, or one repeated in the batch, is rejected as
    "duplicate id" and never stored twice, even under concurrent calls.
    """
    result = EnqueueResult()
    accepted: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    resolver = _AccountResolver(session, scope_tenant_id)
    for raw in payloads:
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            message = normalize_message(raw, limits, default_priority)
            message["tenant_id"], message["account_id"] = resolver.resolve(message)
            _seal_attachment_auth(message, box)
        except InvalidInput as exc:
            result.rejected.append(
                {"id": str(raw_id) if raw_id is not None else "", "reason": str(exc)}
            )
            continue
        key = (message["tenant_id"], message["id"])
        if key in seen:
            result.rejected.append({"id": message["id"], "reason": "duplicate id"})
            continue
        seen.add(key)
        accepted.append(message)
    accepted = _refuse_suppressed(session, accepted, result)
    current = now()
    _insert_new(session, [_row(message, current) for message in accepted], result)
    return result


def _refuse_suppressed(
    session: Session, messages: list[dict[str, Any]], result: EnqueueResult
) -> list[dict[str, Any]]:
    """Messages to an address on their tenant's suppression list are refused, with why.
    One query per tenant in the batch."""
    by_tenant: dict[str, set[str]] = {}
    for message in messages:
        by_tenant.setdefault(message["tenant_id"], set()).update(_recipients(message))
    suppressed = {
        tenant_id: suppressed_among(session, tenant_id, addresses)
        for tenant_id, addresses in by_tenant.items()
    }
    kept = []
    for message in messages:
        listed = suppressed[message["tenant_id"]]
        hit = next((a for a in _recipients(message) if normalize_address(a) in listed), None)
        if hit is None:
            kept.append(message)
        else:
            reason = refusal_reason(listed[normalize_address(hit)])
            result.rejected.append({"id": message["id"], "reason": reason})
    return kept


def _recipients(message: dict[str, Any]) -> list[str]:
    return envelope_recipients(message)


def _seal_attachment_auth(message: dict[str, Any], box: SecretBox | None) -> None:
    """An attachment's own credentials are stored encrypted, like every other secret."""
    for attachment in message["attachments"]:
        if attachment.get("auth"):
            if box is None:
                raise InvalidInput("attachments: credentials need the instance's encryption key")
            attachment["auth"] = seal_client_auth(box, attachment["auth"], None)


def _row(message: dict[str, Any], current: float) -> dict[str, Any]:
    deferred_ts = message["deferred_ts"]
    return {
        "tenant_id": message["tenant_id"],
        "id": message["id"],
        "account_id": message["account_id"],
        "priority": message["priority"],
        "batch_code": message["batch_code"],
        "status": PENDING,
        "payload": message,
        "created_at": current,
        "deferred_ts": deferred_ts,
        "due_at": max(deferred_ts or 0.0, current),
        "attempts": 0,
        "verp_token": new_verp_token(),
        # Chosen once, sent on every attempt: copies of one message carry one Message-ID.
        "smtp_message_id": message.get("message_id") or new_message_id(message["from"]),
    }


def new_message_id(sender: Any) -> str:
    """A fresh Message-ID in the sender's domain (RFC 5322 msg-id); ``sender`` in either
    stored form (addresses.stored_mailbox)."""
    domain = stored_mailbox(sender)["address"].rpartition("@")[2] or None
    return make_msgid(domain=domain)


def _insert_new(session: Session, rows: list[dict[str, Any]], result: EnqueueResult) -> None:
    """Insert the rows whose (tenant_id, id) is new, in one statement; the others are
    reported as duplicates. ``ON CONFLICT DO NOTHING`` makes this safe under concurrent
    calls without a prior look-up (PostgreSQL and SQLite >= 3.35 both support it)."""
    if not rows:
        return
    statement = (
        insert_for(session, Message)
        .on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        .returning(Message.tenant_id, Message.id, Message.priority, Message.due_at)
    )
    stored: set[tuple[str, str]] = set()
    current = now()
    # executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues") with a
    # cached compiled form, and gathers the RETURNING rows of every batch.
    for row in session.execute(statement, rows):
        stored.add((row.tenant_id, row.id))
        if row.due_at <= current:
            result.due_priorities.add(row.priority)
    result.queued += len(stored)
    result.rejected.extend(
        {"id": row["id"], "reason": "duplicate id"}
        for row in rows
        if (row["tenant_id"], row["id"]) not in stored
    )


class _AccountResolver:
    """Resolves tenant and account of each message of a batch: one query per tenant."""

    def __init__(self, session: Session, scope_tenant_id: str | None) -> None:
        self.session = session
        self.scope = scope_tenant_id
        # tenant id -> (its account ids, the default account id), None if no such tenant
        self._tenants: dict[str, tuple[set[str], str | None] | None] = {}

    def _load(self, tenant_id: str) -> tuple[set[str], str | None] | None:
        if tenant_id not in self._tenants:
            rows = self.session.execute(
                select(Tenant.id, Account.id, Account.is_default)
                .outerjoin(Account, Account.tenant_id == Tenant.id)
                .where(Tenant.id == tenant_id)
            ).all()
            if not rows:
                self._tenants[tenant_id] = None
            else:
                ids = {row[1] for row in rows if row[1] is not None}
                marked = [row[1] for row in rows if row[2]]
                default = next(iter(ids)) if len(ids) == 1 else (marked[0] if marked else None)
                self._tenants[tenant_id] = (ids, default)
        return self._tenants[tenant_id]

    def resolve(self, message: dict[str, Any]) -> tuple[str, str]:
        tenant_id = message["tenant_id"] or self.scope
        if tenant_id is None:
            raise InvalidInput("tenant_id: required with the admin token")
        if self.scope is not None and tenant_id != self.scope:
            raise InvalidInput(f"tenant_id: '{tenant_id}' is not the tenant of this token")
        tenant = self._load(tenant_id)
        if tenant is None:
            raise InvalidInput(f"tenant_id: tenant '{tenant_id}' does not exist")
        account_ids, default = tenant
        account_id = message["account_id"] or default
        if account_id is None:
            raise InvalidInput(
                "account_id: required, the tenant has no account or several and none is "
                "marked is_default"
            )
        if account_id not in account_ids:
            raise InvalidInput(
                f"account_id: account '{account_id}' does not exist for tenant '{tenant_id}'"
            )
        return tenant_id, account_id


@dataclass(frozen=True)
class MessageFilter:
    tenant_id: str | None = None
    status: str | None = None
    batch_code: str | None = None
    active_only: bool = False


def list_messages(
    session: Session, flt: MessageFilter, limit: int = 100, cursor: str | None = None
) -> tuple[list[Message], str | None]:
    """A page of messages in insertion order and the cursor of the next page (None at the end).

    The page's keys are picked first, from an index alone where one covers the filters
    (the partial index on waiting messages for ``active_only``), then the rows are read by
    primary key: the planner never chooses to walk the whole table in key order hoping to
    meet matching rows early."""
    query = select(Message.pk).order_by(Message.pk).limit(limit + 1)
    if flt.tenant_id is not None:
        query = query.where(Message.tenant_id == flt.tenant_id)
    if flt.status is not None:
        query = query.where(Message.status == flt.status)
    if flt.batch_code is not None:
        query = query.where(Message.batch_code == flt.batch_code)
    if flt.active_only:
        query = query.where(is_waiting())
    if cursor is not None:
        query = query.where(Message.pk > decode_cursor(cursor))
    keys = list(session.scalars(query))
    rows = select(Message).where(Message.pk.in_(keys)).order_by(Message.pk) if keys else None
    page = list(session.scalars(rows)) if rows is not None else []
    next_cursor = encode_cursor(page[limit - 1].pk) if len(page) > limit else None
    return page[:limit], next_cursor


def encode_cursor(pk: int) -> str:
    """An opaque position: 8 bytes, URL-safe base64 without padding (11 characters)."""
    return base64.urlsafe_b64encode(pk.to_bytes(8, "big", signed=True)).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor names. Every 11-character string of the documented alphabet
    decodes to a 64-bit integer, which any query can compare with; anything else is refused."""
    if len(cursor) != CURSOR_LENGTH or not set(cursor) <= CURSOR_ALPHABET:
        raise InvalidInput("cursor: not a cursor returned by this API", {"cursor": ["invalid"]})
    raw = base64.urlsafe_b64decode(cursor + "=")
    if encode_cursor(int.from_bytes(raw, "big", signed=True)) != cursor:
        raise InvalidInput("cursor: not a cursor returned by this API", {"cursor": ["invalid"]})
    return int.from_bytes(raw, "big", signed=True)


CURSOR_LENGTH = 11
CURSOR_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")


def find_message(session: Session, tenant_id: str | None, msg_id: str) -> Message | None:
    """The message with this id, within the tenant (any tenant's for the admin: first by pk)."""
    query = select(Message).where(Message.id == msg_id).order_by(Message.pk).limit(1)
    if tenant_id is not None:
        query = query.where(Message.tenant_id == tenant_id)
    return session.scalar(query)


def delete_messages(
    session: Session, tenant_id: str | None, ids: list[str]
) -> tuple[int, list[str]]:
    """Remove messages by id within the tenant; returns (removed, ids not found)."""
    query = select(Message.pk, Message.id).where(Message.id.in_(ids))
    if tenant_id is not None:
        query = query.where(Message.tenant_id == tenant_id)
    found = session.execute(query).all()
    if found:
        session.execute(delete(Message).where(Message.pk.in_([row.pk for row in found])))
    found_ids = {row.id for row in found}
    return len(found), [msg_id for msg_id in ids if msg_id not in found_ids]


def account_has_waiting_messages(session: Session, tenant_id: str, account_id: str) -> bool:
    query = select(Message.pk).where(
        Message.tenant_id == tenant_id,
        Message.account_id == account_id,
        or_(Message.status == PENDING, Message.status == DEFERRED),
    )
    return session.scalar(query.limit(1)) is not None


def message_record(message: Message, events: list[Any] | None = None) -> dict[str, Any]:
    """A message as the API shows it (timestamps as integer Unix seconds)."""

    record: dict[str, Any] = {
        "id": message.id,
        "tenant_id": message.tenant_id,
        "account_id": message.account_id,
        "priority": message.priority,
        "batch_code": message.batch_code,
        "status": message.status,
        "created_at": unix_seconds(message.created_at),
        "deferred_ts": unix_seconds(message.deferred_ts),
        "sent_ts": unix_seconds(message.sent_ts),
        "error_ts": unix_seconds(message.error_ts),
        "error": message.error,
        "reported_ts": unix_seconds(message.reported_ts),
        "attempts": message.attempts,
        "smtp_message_id": message.smtp_message_id,
        "recipients": recipient_records(message),
    }
    if events is not None:
        record["events"] = [event_record(event) for event in events]
        record.update(returned_mail_of(events))  # latest bounce, PEC receipts
    return record


def message_records(
    session: Session, messages: list[Message], include_history: bool
) -> list[dict[str, Any]]:
    history = events_of(session, [m.pk for m in messages]) if include_history else {}
    returned = {} if include_history else latest_returned_mail(session, [m.pk for m in messages])
    records = [message_record(m, history.get(m.pk) if include_history else None) for m in messages]
    for message, record in zip(messages, records, strict=True):
        record.update(returned.get(message.pk, {}))
    return records
