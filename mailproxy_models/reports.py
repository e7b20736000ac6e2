"""Delivery reports: what happened to each message, pushed to the tenant's application.

Every message event is one report entry. An entry is reported once the client
acknowledged it (``message_events.reported_ts``); a message's ``reported_ts`` is set when
its final outcome (sent or error) was acknowledged, which is what retention looks at.
Per tenant, ``tenant_sync`` keeps the conversation's state: a lease so one worker at a
time talks to a client, the backoff after failures, the client's do-not-disturb time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, insert_for, unix_seconds
from .events import MessageEvent
from .messages import ERROR, SENT, Message
from .tenants import Tenant

FINAL_KINDS = ("sent", "error")


class TenantSync(Base):
    __tablename__ = "tenant_sync"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    lease_until: Mapped[float | None] = mapped_column(Float)
    retry_at: Mapped[float | None] = mapped_column(Float)  # backoff after a failed call
    dnd_until: Mapped[float | None] = mapped_column(Float)  # the client's next_sync_after
    last_attempt_at: Mapped[float | None] = mapped_column(Float)
    last_success_at: Mapped[float | None] = mapped_column(Float)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class ReportEntry:
    event_pk: int
    message_id: str
    body: dict[str, Any]


def report_body(message_id: str, event: MessageEvent) -> dict[str, Any]:
    """One entry of the ``delivery_report`` list, shaped by the event's kind (API.md).

    An attempt's entry lists what the server answered for each recipient it was sent to
    (``recipients``), so a client sees who got it and who is still waiting."""
    ts = int(event.ts)
    if event.kind == "sent":
        return {"id": message_id, "sent_ts": ts, **_recipients(event)}
    if event.kind == "error":
        return {"id": message_id, "error_ts": ts, "error": event.description, **_recipients(event)}
    if event.kind in ("deferred", "rate_limited"):
        retry_at = (event.details or {}).get("retry_at", ts)
        return {
            "id": message_id,
            "deferred_ts": int(retry_at),
            "deferred_reason": event.description,
            **_recipients(event),
        }
    if event.kind == "bounce":
        details = event.details or {}
        return {
            "id": message_id,
            "bounce_ts": ts,
            "bounce_type": details.get("bounce_type"),
            "bounce_code": event.enhanced_status or event.smtp_code,
            "bounce_reason": event.description,
            "bounce_category": details.get("reason"),  # docs/bounces.md: the reason's name
        }
    return {"id": message_id, "pec_event": event.kind, "pec_ts": ts, "pec_details": event.details}


def _recipients(event: MessageEvent) -> dict[str, Any]:
    recipients = (event.details or {}).get("recipients")
    if not recipients:
        return {}
    fields = ("address", "status", "smtp_code", "enhanced_status", "smtp_text")
    return {"recipients": [{name: r.get(name) for name in fields} for r in recipients]}


def pending_reports(session: Session, tenant_id: str, limit: int) -> list[ReportEntry]:
    """The tenant's oldest unreported events, at most ``limit``."""
    rows = session.execute(
        select(MessageEvent, Message.id)
        .join(Message, Message.pk == MessageEvent.message_pk)
        .where(Message.tenant_id == tenant_id, MessageEvent.reported_ts.is_(None))
        .order_by(MessageEvent.pk)
        .limit(limit)
    ).all()
    return [ReportEntry(event.pk, msg_id, report_body(msg_id, event)) for event, msg_id in rows]


def acknowledge(
    session: Session, entries: list[ReportEntry], refused_ids: set[str], current: float
) -> int:
    """Mark the entries the client took (all but those it listed in ``error``) as reported,
    and their messages too when the acknowledged event is final. Returns how many."""
    taken = [e.event_pk for e in entries if e.message_id not in refused_ids]
    if not taken:
        return 0
    session.execute(
        update(MessageEvent).where(MessageEvent.pk.in_(taken)).values(reported_ts=current)
    )
    final_messages = select(MessageEvent.message_pk).where(
        MessageEvent.pk.in_(taken), MessageEvent.kind.in_(FINAL_KINDS)
    )
    session.execute(
        update(Message)
        .where(Message.pk.in_(final_messages), Message.status.in_((SENT, ERROR)))
        .values(reported_ts=current)
        .execution_options(synchronize_session=False)
    )
    return len(taken)


def claim_tenant_sync(
    session: Session, tenant_id: str, lease_seconds: float, current: float
) -> bool:
    """Take the tenant's sync lease; False if another worker holds it."""
    session.execute(
        insert_for(session, TenantSync).values(tenant_id=tenant_id).on_conflict_do_nothing()
    )
    result = session.execute(
        update(TenantSync)
        .where(
            TenantSync.tenant_id == tenant_id,
            or_(TenantSync.lease_until.is_(None), TenantSync.lease_until < current),
        )
        .values(lease_until=current + lease_seconds, last_attempt_at=current)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_sync_success(
    session: Session, tenant_id: str, next_sync_after: float | None, current: float
) -> None:
    session.execute(
        update(TenantSync)
        .where(TenantSync.tenant_id == tenant_id)
        .values(
            lease_until=None,
            retry_at=None,
            failures=0,
            last_error=None,
            last_success_at=current,
            dnd_until=next_sync_after,
        )
    )


def record_sync_failure(
    session: Session, tenant_id: str, error: str, backoff: list[int], current: float
) -> float:
    """Note the failure and when to try again (the schedule's last step repeats)."""
    state = session.get(TenantSync, tenant_id)
    failures = (state.failures if state else 0) + 1
    retry_at = current + backoff[min(failures, len(backoff)) - 1]
    session.execute(
        update(TenantSync)
        .where(TenantSync.tenant_id == tenant_id)
        .values(lease_until=None, retry_at=retry_at, failures=failures, last_error=error[:2000])
    )
    return retry_at


def tenants_due_for_sync(session: Session, heartbeat_seconds: float, current: float) -> list[str]:
    """Tenants with a client URL whose sync is due: they have unreported events, or their
    heartbeat is due (not called for ``heartbeat_seconds`` and not in do-not-disturb);
    never while another worker holds the lease or a failure's backoff runs."""
    unreported = exists().where(
        Message.tenant_id == Tenant.id,
        MessageEvent.message_pk == Message.pk,
        MessageEvent.reported_ts.is_(None),
    )
    heartbeat_due = or_(
        TenantSync.last_success_at.is_(None),
        TenantSync.last_success_at <= current - heartbeat_seconds,
    ) & or_(TenantSync.dnd_until.is_(None), TenantSync.dnd_until <= current)
    query = (
        select(Tenant.id)
        .outerjoin(TenantSync, TenantSync.tenant_id == Tenant.id)
        .where(
            Tenant.client_base_url.is_not(None),
            or_(TenantSync.lease_until.is_(None), TenantSync.lease_until < current),
            or_(TenantSync.retry_at.is_(None), TenantSync.retry_at <= current),
            or_(unreported, heartbeat_due),
        )
        .order_by(Tenant.id)
    )
    return list(session.scalars(query))


def _purgeable(older_than: float, tenant_id: str | None) -> Any:
    """Final messages reported before ``older_than``, without a later event (a bounce, a
    PEC receipt) the client has not acknowledged yet."""
    unreported_event = exists().where(
        MessageEvent.message_pk == Message.pk, MessageEvent.reported_ts.is_(None)
    )
    query = select(Message.pk).where(
        Message.reported_ts.is_not(None), Message.reported_ts < older_than, ~unreported_event
    )
    return query if tenant_id is None else query.where(Message.tenant_id == tenant_id)


def count_purgeable(session: Session, older_than: float, tenant_id: str | None = None) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(_purgeable(older_than, tenant_id).subquery())
        )
        or 0
    )


def purge_reported(
    session: Session, older_than: float, tenant_id: str | None = None, limit: int = 1000
) -> int:
    """Delete up to ``limit`` purgeable messages (with their events), of one tenant or all;
    unreported messages are never purged."""
    pks = list(session.scalars(_purgeable(older_than, tenant_id).limit(limit)))
    if pks:
        session.execute(delete(Message).where(Message.pk.in_(pks)))
    return len(pks)


def sync_status(session: Session, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Per tenant with a sync URL: last and next sync, failures, unreported entries."""
    unreported = dict(
        session.execute(
            select(Message.tenant_id, func.count(MessageEvent.pk))
            .join(MessageEvent, MessageEvent.message_pk == Message.pk)
            .where(MessageEvent.reported_ts.is_(None))
            .group_by(Message.tenant_id)
        ).all()
    )
    query = (
        select(Tenant, TenantSync)
        .outerjoin(TenantSync, TenantSync.tenant_id == Tenant.id)
        .where(Tenant.client_base_url.is_not(None))
        .order_by(Tenant.id)
    )
    if tenant_id is not None:
        query = query.where(Tenant.id == tenant_id)

    statuses = []
    for tenant, state in session.execute(query).all():
        waits = [v for v in (state.retry_at, state.dnd_until) if v] if state else []
        statuses.append(
            {
                "tenant_id": tenant.id,
                "client_sync_url": (tenant.client_base_url or "").rstrip("/")
                + tenant.client_sync_path,
                "last_sync_ts": unix_seconds(state.last_success_at) if state else None,
                "next_sync_ts": unix_seconds(max(waits)) if waits else None,
                "failures": state.failures if state else 0,
                "last_error": state.last_error if state else None,
                "unreported": int(unreported.get(tenant.id, 0)),
            }
        )
    return statuses
