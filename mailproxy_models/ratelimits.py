"""Rate limits that hold across the whole worker fleet: per account, and per tenant over all
of its accounts together.

What counts against a window: messages handed to the server (the send log, stamped when
the outcome is recorded, never earlier than the real send) plus messages claimed by some
worker and not recorded yet (they may be on the wire). Capacity checks of one account, and
of one tenant, are serialised (PostgreSQL advisory locks, always tenant before its accounts
and in sorted order, so two claims never wait on each other in a cycle; SQLite serialises
every writer), so two workers never both see the same free capacity.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from .accounts import Account
from .messages import Message, is_waiting
from .send_log import SendLogEntry
from .tenants import Tenant

WINDOWS = (("limit_per_minute", 60), ("limit_per_hour", 3600), ("limit_per_day", 86400))
# A tenant's ``rate_limits`` object: the same windows, named as the seed system names them.
TENANT_WINDOWS = (("per_minute", 60), ("per_hour", 3600), ("per_day", 86400))
# The longest window: the send log older than this counts for nothing (retention purges it).
LONGEST_WINDOW = max(seconds for _, seconds in WINDOWS)


@dataclass(frozen=True)
class Capacity:
    allowed: int  # how many may go now
    free_at: float  # when the others may try again


def limits_of(account: Account, scale: float) -> list[tuple[int, float]]:
    """(limit, window seconds) pairs set on the account; ``scale`` shortens windows in tests."""
    return [
        (getattr(account, field), seconds * scale)
        for field, seconds in WINDOWS
        if getattr(account, field)
    ]


def tenant_limits_of(tenant: Tenant | None, scale: float) -> list[tuple[int, float]]:
    """(limit, window seconds) pairs of the tenant's ``rate_limits``; a key absent, null or
    not a positive whole number sets no limit for that window."""
    given: Any = tenant.rate_limits if tenant is not None else None
    if not isinstance(given, dict):
        return []
    limits = []
    for key, seconds in TENANT_WINDOWS:
        value = given.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limits.append((value, seconds * scale))
    return limits


def _advisory_lock(session: Session, name: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(name.encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def lock_account(session: Session, tenant_id: str, account_id: str) -> None:
    """Serialise capacity checks of one account until the transaction ends."""
    _advisory_lock(session, f"ratelimit:{tenant_id}/{account_id}")


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialise capacity checks of one tenant's limits until the transaction ends. Taken
    before any lock of the tenant's accounts."""
    _advisory_lock(session, f"ratelimit-tenant:{tenant_id}")


def capacity(
    session: Session,
    account: Account,
    limits: list[tuple[int, float]],
    current: float,
    wanted: int,
) -> Capacity:
    """How many of ``wanted`` messages the account may hand over now, and, for the rest,
    when a window that is full will have room again."""
    return _capacity(session, limits, current, wanted, account.tenant_id, account.id)


def tenant_capacity(
    session: Session,
    tenant_id: str,
    limits: list[tuple[int, float]],
    current: float,
    wanted: int,
) -> Capacity:
    """The same for the tenant's limits, counting the messages of all its accounts."""
    return _capacity(session, limits, current, wanted, tenant_id, None)


def _capacity(
    session: Session,
    limits: list[tuple[int, float]],
    current: float,
    wanted: int,
    tenant_id: str,
    account_id: str | None,
) -> Capacity:
    # In flight: claimed and not recorded. Only claimed messages carry a lease, so the
    # partial index on leased messages answers this whatever the size of the history.
    in_flight_query = select(func.count(Message.pk)).where(
        Message.lease_until.is_not(None),
        Message.lease_until > current,
        Message.tenant_id == tenant_id,
        is_waiting(),
    )
    sent_filter = [SendLogEntry.tenant_id == tenant_id]
    if account_id is not None:
        in_flight_query = in_flight_query.where(Message.account_id == account_id)
        sent_filter.append(SendLogEntry.account_id == account_id)
    in_flight = session.scalar(in_flight_query) or 0
    allowed = wanted
    free_at = current
    for limit, window in limits:
        # How many sends the window holds and the oldest of them, read from the index.
        oldest, sent = session.execute(
            select(func.min(SendLogEntry.ts), func.count()).where(
                *sent_filter, SendLogEntry.ts > current - window
            )
        ).one()
        room = max(limit - int(sent) - in_flight, 0)
        if room < wanted:
            # This window fills up: it has room again when its oldest send leaves it (what
            # is in flight or claimed now is newer). At least a second: no busy loop.
            start = oldest if oldest is not None else current
            free_at = max(free_at, start + window, current + 1)
        allowed = min(allowed, room)
    return Capacity(allowed, free_at)
