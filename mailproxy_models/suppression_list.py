"""The tenant's suppression list: addresses that hard-bounced (or that the tenant added).

A message to a suppressed address is refused at enqueue with the reason, so a dead
address is not tried again and again (which hurts the sender's reputation). The tenant
removes an address through the API once it is known to work again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, insert_for, now, unix_seconds
from .errors import InvalidInput, NotFound

SOURCES = ("bounce", "manual")


class SuppressedAddress(Base):
    __tablename__ = "suppressed_addresses"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    # Lowercased: the domain is case-insensitive and, in practice, so are local parts.
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))  # the message that bounced
    created_at: Mapped[float] = mapped_column(Float, nullable=False, default=now)


class SoftBounceCount(Base):
    """Soft bounces of an address within the current window: past the tenant's limit, the
    address is treated like a hard bounce (a mailbox full for a week is gone in practice)."""

    __tablename__ = "soft_bounce_counts"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    window_start: Mapped[float] = mapped_column(Float, nullable=False)
    last_reason: Mapped[str | None] = mapped_column(Text)


def count_soft_bounce(
    session: Session,
    tenant_id: str,
    address: str,
    reason: str,
    limit: int,
    window: float,
    current: float,
) -> int:
    """Count one soft bounce of the address; returns its count in the current window (a
    window older than ``window`` seconds starts again at 1). ``limit`` 0: not counted."""
    if limit <= 0:
        return 0
    normalized = normalize_address(address)
    row = session.get(SoftBounceCount, (tenant_id, normalized), with_for_update=True)
    if row is None:
        session.execute(
            insert_for(session, SoftBounceCount)
            .values(tenant_id=tenant_id, address=normalized, count=0, window_start=current)
            .on_conflict_do_nothing()
        )
        row = session.get(SoftBounceCount, (tenant_id, normalized), with_for_update=True)
        assert row is not None
    if row.window_start < current - window:
        row.count, row.window_start = 0, current
    row.count += 1
    row.last_reason = reason[:1000]
    return row.count


def normalize_address(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


def suppress(
    session: Session,
    tenant_id: str,
    address: str,
    source: str,
    reason: str | None,
    message_id: str | None = None,
    current: float | None = None,
) -> bool:
    """Put an address on the list; an address already there keeps its first reason.
    Returns True when it was added now."""
    normalized = normalize_address(address)
    if not normalized or "@" not in normalized:
        raise InvalidInput(f"'{address}' is not an email address", {"address": ["invalid"]})
    result = session.execute(
        insert_for(session, SuppressedAddress)
        .values(
            tenant_id=tenant_id,
            address=normalized,
            source=source,
            reason=(reason or "")[:1000] or None,
            message_id=message_id,
            created_at=current or now(),
        )
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def unsuppress(session: Session, tenant_id: str, address: str) -> None:
    result = session.execute(
        delete(SuppressedAddress).where(
            SuppressedAddress.tenant_id == tenant_id,
            SuppressedAddress.address == normalize_address(address),
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"'{address}' is not on the suppression list of tenant '{tenant_id}'")


def suppressed_among(
    session: Session, tenant_id: str, addresses: Iterable[str]
) -> dict[str, SuppressedAddress]:
    """Which of these addresses the tenant suppressed, keyed by normalized address."""
    wanted = {normalize_address(a) for a in addresses}
    if not wanted:
        return {}
    rows = session.scalars(
        select(SuppressedAddress).where(
            SuppressedAddress.tenant_id == tenant_id, SuppressedAddress.address.in_(wanted)
        )
    )
    return {row.address: row for row in rows}


def list_suppressed(
    session: Session, tenant_id: str, limit: int = 100, after: str | None = None
) -> tuple[list[SuppressedAddress], int]:
    """A page of the list in address order (``after``: the last address of the previous
    page) and the list's total size."""
    query = (
        select(SuppressedAddress)
        .where(SuppressedAddress.tenant_id == tenant_id)
        .order_by(SuppressedAddress.address)
        .limit(limit)
    )
    if after:
        query = query.where(SuppressedAddress.address > normalize_address(after))
    total = session.scalar(select(func.count()).where(SuppressedAddress.tenant_id == tenant_id))
    return list(session.scalars(query)), int(total or 0)


def refusal_reason(entry: SuppressedAddress) -> str:
    """The sentence a refused message gets: why, since when, and how to undo it."""
    since = datetime.fromtimestamp(entry.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    why = "it hard-bounced" if entry.source == "bounce" else "the tenant added it"
    detail = f": {entry.reason}" if entry.reason else ""
    return (
        f"recipient {entry.address} is on the tenant's suppression list since {since} "
        f"({why}{detail}); remove it with DELETE /suppression/{entry.address} to send to it"
    )


def suppression_record(entry: SuppressedAddress) -> dict[str, Any]:
    return {
        "address": entry.address,
        "source": entry.source,
        "reason": entry.reason,
        "message_id": entry.message_id,
        "created_at": unix_seconds(entry.created_at),
    }
