"""Claims: how many workers share the queue without sending a message twice.

A worker claims a batch by stamping it with a fresh token and a lease. On PostgreSQL the
candidates are picked with ``FOR UPDATE SKIP LOCKED``, so concurrent workers take disjoint
batches without waiting on each other; the conditional UPDATE re-checks the lease, so even
without row locks (SQLite, where writers are serialised anyway) a message is claimed by one
token only. A claim whose worker died simply expires: the message is due again.

A worker renews its claim on the rest of its batch after each message it records
(``renew_claim``): a slow server never lets the lease run out under a live worker, and a
worker that finds its claim gone (it stalled past the lease and another took the messages)
stops sending them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from .accounts import Account
from .db import now
from .lifecycle import hold_over_limit
from .message_validation import PRIORITIES
from .messages import WAITING, Message, is_waiting, new_message_id
from .ratelimits import (
    capacity,
    limits_of,
    lock_account,
    lock_tenant,
    tenant_capacity,
    tenant_limits_of,
)
from .suspensions import not_suspended
from .tenants import Tenant


@dataclass(frozen=True)
class ClaimedMessage:
    """Plain copy of what a sender needs, usable after the claiming session is closed."""

    pk: int
    tenant_id: str
    account_id: str
    id: str
    payload: dict[str, Any]
    claim_token: str
    verp_token: str | None = None
    # The Message-ID every attempt carries, chosen at enqueue.
    smtp_message_id: str | None = None
    # Outcomes per recipient of earlier attempts (recipients.py); None before the first.
    recipient_outcomes: dict[str, Any] | None = None


def _claimable(current: float) -> Any:
    return (
        is_waiting(),
        Message.due_at <= current,
        or_(Message.lease_until.is_(None), Message.lease_until < current),
        *not_suspended(),
    )


def claim_due_messages(
    session: Session,
    priority: int,
    limit: int,
    lease_seconds: float,
    current: float | None = None,
    rate_window_scale: float = 1.0,
) -> list[ClaimedMessage]:
    """Claim up to ``limit`` due messages of one priority, oldest due first, within the
    rate limits of their accounts; those over a limit are deferred to when the window has
    room (or refused, per the account's ``limit_behavior``)."""
    current = now() if current is None else current
    candidates = (
        select(Message.pk)
        .where(Message.priority == priority, *_claimable(current))
        .order_by(Message.due_at, Message.pk)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    pks = list(session.scalars(candidates))
    pks = _within_rate_limits(session, pks, current, rate_window_scale)
    if not pks:
        return []
    token = uuid.uuid4().hex
    session.execute(
        update(Message)
        .where(Message.pk.in_(pks), *_claimable(current))
        .values(claim_token=token, lease_until=current + lease_seconds)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(
            Message.pk,
            Message.tenant_id,
            Message.account_id,
            Message.id,
            Message.payload,
            Message.verp_token,
            Message.smtp_message_id,
            Message.recipient_outcomes,
        ).where(Message.claim_token == token)
    ).all()
    message_ids = _message_ids(session, rows)
    order = {pk: index for index, pk in enumerate(pks)}
    return [
        ClaimedMessage(
            r.pk,
            r.tenant_id,
            r.account_id,
            r.id,
            r.payload,
            token,
            r.verp_token,
            message_ids.get(r.pk, r.smtp_message_id),
            r.recipient_outcomes,
        )
        for r in sorted(rows, key=lambda r: order[r.pk])
    ]


def _message_ids(session: Session, rows: Any) -> dict[int, str]:
    """Message-IDs for claimed messages stored without one (before it was chosen at
    enqueue): chosen now and stored, so that their next attempts carry the same."""
    chosen = {r.pk: new_message_id(r.payload["from"]) for r in rows if r.smtp_message_id is None}
    if chosen:
        session.execute(
            update(Message),
            [{"pk": pk, "smtp_message_id": value} for pk, value in chosen.items()],
        )
    return chosen


def renew_claim(
    session: Session,
    pks: list[int],
    token: str,
    lease_seconds: float,
    current: float | None = None,
) -> set[int]:
    """Extend the lease on the messages still held under ``token``; returns their pks.

    Conditional on the token: a message whose lease ran out and that another worker
    claimed is not in the answer, and the caller must not send it."""
    if not pks:
        return set()
    current = now() if current is None else current
    renewed = session.execute(
        update(Message)
        .where(Message.pk.in_(pks), Message.claim_token == token, Message.status.in_(WAITING))
        .values(lease_until=current + lease_seconds)
        .returning(Message.pk)
        .execution_options(synchronize_session=False)
    )
    return set(renewed.scalars())


def due_priorities(session: Session, current: float | None = None) -> list[int]:
    """Priorities that have at least one message ready to claim (one indexed probe each)."""
    current = now() if current is None else current
    found = []
    for priority in PRIORITIES:
        probe = select(Message.pk).where(Message.priority == priority, *_claimable(current))
        # In the claim index's order: the plan walks that index from the oldest due, even
        # when the planner overestimates how many rows are due (a scan would then need a
        # sort of them all).
        probe = probe.order_by(Message.due_at, Message.pk).limit(1)
        if session.scalar(probe) is not None:
            found.append(priority)
    return found


def queue_depths(session: Session, tenant_id: str | None = None) -> dict[int, int]:
    """Waiting messages per priority, of one tenant or of all (for /status)."""
    query = (
        select(Message.priority, func.count(Message.pk))
        .where(is_waiting())
        .group_by(Message.priority)
    )
    if tenant_id is not None:
        query = query.where(Message.tenant_id == tenant_id)
    rows = session.execute(query).all()
    depths = dict.fromkeys(PRIORITIES, 0)
    depths.update({int(p): int(c) for p, c in rows})
    return depths


def _within_rate_limits(
    session: Session, pks: list[int], current: float, scale: float
) -> list[int]:
    """The candidates their accounts and tenants may send now; the others deferred or
    refused (each per its account's ``limit_behavior``).

    A tenant's ``rate_limits`` span all its accounts: after each account's own limits, the
    tenant's windows count the sends and claims of every account of the tenant. Locks are
    taken tenant by tenant in sorted order, the tenant's before its accounts', so claims
    never wait on each other in a cycle."""
    if not pks:
        return pks
    rows = session.execute(
        select(Message.pk, Message.tenant_id, Message.account_id).where(Message.pk.in_(pks))
    ).all()
    order = {pk: index for index, pk in enumerate(pks)}
    by_tenant: dict[str, dict[str, list[int]]] = {}
    for row in sorted(rows, key=lambda r: order[r.pk]):
        by_tenant.setdefault(row.tenant_id, {}).setdefault(row.account_id, []).append(row.pk)
    allowed: set[int] = set(pks)
    for tenant_id in sorted(by_tenant):
        tenant_limits = tenant_limits_of(session.get(Tenant, tenant_id), scale)
        if tenant_limits:
            lock_tenant(session, tenant_id)
        accounts: dict[str, Account | None] = {}
        kept: list[int] = []  # of this tenant, within their accounts' limits
        for account_id in sorted(by_tenant[tenant_id]):
            account = accounts[account_id] = session.get(Account, (tenant_id, account_id))
            account_pks = by_tenant[tenant_id][account_id]
            limits = limits_of(account, scale) if account is not None else []
            if account is None or not limits:
                kept += account_pks
                continue
            lock_account(session, tenant_id, account_id)
            room = capacity(session, account, limits, current, len(account_pks))
            over = account_pks[room.allowed :]
            if over:
                hold_over_limit(session, over, account.limit_behavior, room.free_at, current)
                allowed -= set(over)
            kept += account_pks[: room.allowed]
        if tenant_limits and kept:
            kept.sort(key=order.__getitem__)  # the tenant's room goes to the oldest due
            room = tenant_capacity(session, tenant_id, tenant_limits, current, len(kept))
            _hold_over_tenant_limit(
                session, kept[room.allowed :], accounts, rows, room.free_at, current
            )
            allowed -= set(kept[room.allowed :])
    return [pk for pk in pks if pk in allowed]


def _hold_over_tenant_limit(
    session: Session,
    over: list[int],
    accounts: dict[str, Account | None],
    rows: Any,
    free_at: float,
    current: float,
) -> None:
    """Messages over their tenant's limit wait or end as their own account says."""
    account_of = {row.pk: row.account_id for row in rows}
    by_behavior: dict[str, list[int]] = {}
    for pk in over:
        account = accounts.get(account_of[pk])
        behavior = account.limit_behavior if account is not None else "defer"
        by_behavior.setdefault(behavior, []).append(pk)
    for behavior, held in sorted(by_behavior.items()):
        hold_over_limit(session, held, behavior, free_at, current)
