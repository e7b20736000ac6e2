"""Per-account rate limits that hold across the whole worker fleet.

What counts against a window: messages handed to the server (the send log, stamped when
the outcome is recorded, never earlier than the real send) plus messages claimed by some
worker and not recorded yet (they may be on the wire). Claims of one account are
serialised (PostgreSQL advisory lock; SQLite serialises every writer), so two workers
never both see the same free capacity.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from .accounts import Account
from .messages import WAITING, Message
from .send_log import SendLogEntry

WINDOWS = (("limit_per_minute", 60), ("limit_per_hour", 3600), ("limit_per_day", 86400))


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


def lock_account(session: Session, tenant_id: str, account_id: str) -> None:
    """Serialise capacity checks of one account until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"ratelimit:{tenant_id}/{account_id}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def capacity(
    session: Session,
    account: Account,
    limits: list[tuple[int, float]],
    current: float,
    wanted: int,
) -> Capacity:
    """How many of ``wanted`` messages the account may hand over now, and, for the rest,
    when a window that is full will have room again."""
    in_flight = (
        session.scalar(
            select(func.count(Message.pk)).where(
                Message.tenant_id == account.tenant_id,
                Message.account_id == account.id,
                Message.status.in_(WAITING),
                Message.lease_until > current,
            )
        )
        or 0
    )
    allowed = wanted
    free_at = current
    for limit, window in limits:
        sent = list(
            session.scalars(
                select(SendLogEntry.ts)
                .where(
                    SendLogEntry.tenant_id == account.tenant_id,
                    SendLogEntry.account_id == account.id,
                    SendLogEntry.ts > current - window,
                )
                .order_by(SendLogEntry.ts)
            )
        )
        room = max(limit - len(sent) - in_flight, 0)
        if room < wanted:
            # This window fills up: it has room again when its oldest send leaves it (what
            # is in flight or claimed now is newer). At least a second: no busy loop.
            oldest = sent[0] if sent else current
            free_at = max(free_at, oldest + window, current + 1)
        allowed = min(allowed, room)
    return Capacity(allowed, free_at)
