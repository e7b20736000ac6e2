"""The audit log: who changed what and when, for every administrative change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Float, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, BigId, now
from .messages import decode_cursor, encode_cursor


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_pk", "tenant_id", "pk"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[float] = mapped_column(Float, default=now, nullable=False)
    # "admin", "tenant:<id>" or "cli"; never a token.
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    # No foreign key: the trail of a deleted tenant outlives it.
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


def record_audit(
    session: Session,
    actor: str,
    action: str,
    tenant_id: str | None,
    target_type: str,
    target_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an entry to the caller's transaction: it exists exactly when the change does."""
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            tenant_id=tenant_id,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    tenant_id: str | None = None
    action: str | None = None
    # Entries from this time on only: a tenant reads the history of its own lifetime, not
    # that of an earlier, deleted tenant that had the same id.
    since: float | None = None


def list_audit(
    session: Session, flt: AuditFilter, limit: int = 100, cursor: str | None = None
) -> tuple[list[AuditEntry], str | None]:
    """Newest first, a page at a time."""
    query = select(AuditEntry).order_by(AuditEntry.pk.desc()).limit(limit + 1)
    if flt.tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == flt.tenant_id)
    if flt.action is not None:
        query = query.where(AuditEntry.action == flt.action)
    if flt.since is not None:
        query = query.where(AuditEntry.ts >= flt.since)
    if cursor is not None:
        query = query.where(AuditEntry.pk < decode_cursor(cursor))
    page = list(session.scalars(query))
    next_cursor = encode_cursor(page[limit - 1].pk) if len(page) > limit else None
    return page[:limit], next_cursor


def audit_record(entry: AuditEntry) -> dict[str, Any]:
    return {
        "ts": int(entry.ts),
        "actor": entry.actor,
        "action": entry.action,
        "tenant_id": entry.tenant_id,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details": entry.details,
    }
