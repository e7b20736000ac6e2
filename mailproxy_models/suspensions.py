"""Suspending and activating a tenant, or one batch of a tenant: its messages wait, kept,
and are delivered once activated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, String, delete, exists, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, now
from .messages import Message
from .tenants import Tenant, get_tenant


class SuspendedBatch(Base):
    __tablename__ = "suspended_batches"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    batch_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    suspended_at: Mapped[float] = mapped_column(Float, default=now, nullable=False)


def not_suspended() -> tuple[Any, ...]:
    """Conditions a message must meet to be sent: its tenant active, its batch not held."""
    inactive_tenants = select(Tenant.id).where(Tenant.active.is_(False))
    held_batch = exists().where(
        SuspendedBatch.tenant_id == Message.tenant_id,
        SuspendedBatch.batch_code == Message.batch_code,
    )
    return (Message.tenant_id.not_in(inactive_tenants), ~held_batch)


def suspend(session: Session, tenant_id: str, batch_code: str | None = None) -> None:
    """Hold the tenant's messages (or one batch of them); idempotent."""
    tenant = get_tenant(session, tenant_id)
    if batch_code is None:
        tenant.active = False
    elif session.get(SuspendedBatch, (tenant_id, batch_code)) is None:
        session.add(SuspendedBatch(tenant_id=tenant_id, batch_code=batch_code))
    session.flush()


def activate(session: Session, tenant_id: str, batch_code: str | None = None) -> None:
    """Release the tenant (and every held batch when no batch is named), or one batch."""
    tenant = get_tenant(session, tenant_id)
    batches = delete(SuspendedBatch).where(SuspendedBatch.tenant_id == tenant_id)
    if batch_code is None:
        tenant.active = True
    else:
        batches = batches.where(SuspendedBatch.batch_code == batch_code)
    session.execute(batches)
    session.flush()


def suspension_state(session: Session, tenant_id: str) -> dict[str, Any]:
    tenant = get_tenant(session, tenant_id)
    batches = session.scalars(
        select(SuspendedBatch.batch_code)
        .where(SuspendedBatch.tenant_id == tenant_id)
        .order_by(SuspendedBatch.batch_code)
    )
    return {"active": tenant.active, "suspended_batches": list(batches)}
