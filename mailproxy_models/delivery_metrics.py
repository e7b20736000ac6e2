"""What the fleet's delivery looks like right now, read from the database for a metrics scrape.

The database is shared by every API process and every worker on every host, so numbers
read here are right fleet-wide however many processes there are. Five queries
per scrape on small tables or indexes, plus one over the unreported events: the totals,
the latency histogram, the due queue per priority, the tenants with a sync URL and the
oldest unreported event of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Index, func, select
from sqlalchemy.orm import Session

from .accounts import Account
from .db import now
from .delivery_totals import LatencyHistogram, read_latency, read_totals
from .events import MessageEvent
from .message_validation import PRIORITIES
from .messages import Message, is_waiting
from .tenants import Tenant

# The report lag reads only the events not yet reported: a partial index holds just those,
# so the cost follows the backlog, not the size of the table (the report sync's own
# queries use it too).
UNREPORTED_EVENTS = Index(
    "ix_message_events_unreported",
    MessageEvent.message_pk,
    MessageEvent.ts,
    sqlite_where=MessageEvent.reported_ts.is_(None),
    postgresql_where=MessageEvent.reported_ts.is_(None),
)


@dataclass
class DeliverySnapshot:
    # (tenant_id, account_id, kind) -> count since the first outcome; never lowered
    totals: dict[tuple[str, str, str], int]
    # tenant_id -> latency histogram (first due -> sent)
    latency: dict[str, LatencyHistogram]
    # priority -> messages waiting and due now (pending or deferred, due_at <= now)
    due: dict[int, int] = field(default_factory=dict)
    # priority -> seconds since the longest-waiting due message became due (0 when none)
    oldest_due_age: dict[int, float] = field(default_factory=dict)
    # tenant_id -> seconds since its oldest unreported event (tenants with a sync URL)
    report_lag: dict[str, float] = field(default_factory=dict)
    # tenant_id -> its accounts whose server refused their credentials (0 when none)
    failing_accounts: dict[str, int] = field(default_factory=dict)


def delivery_snapshot(session: Session, current: float | None = None) -> DeliverySnapshot:
    """Read the whole snapshot; cheap enough to run on every scrape (indexed, grouped)."""
    current = now() if current is None else current
    snapshot = DeliverySnapshot(totals=read_totals(session), latency=read_latency(session))
    snapshot.due = dict.fromkeys(PRIORITIES, 0)
    snapshot.oldest_due_age = dict.fromkeys(PRIORITIES, 0.0)
    # The claim index (priority, due_at over waiting messages only) answers this; the
    # priorities named so that each is a range of due entries, not a walk over everything
    # waiting (scheduled mail included).
    due_rows = session.execute(
        select(Message.priority, func.count(), func.min(Message.due_at))
        .where(Message.priority.in_(list(PRIORITIES)), is_waiting(), Message.due_at <= current)
        .group_by(Message.priority)
    ).all()
    for priority, count, oldest in due_rows:
        snapshot.due[int(priority)] = int(count)
        snapshot.oldest_due_age[int(priority)] = max(0.0, current - float(oldest))
    snapshot.failing_accounts = {
        tenant_id: int(count)
        for tenant_id, count in session.execute(
            select(Account.tenant_id, func.count(Account.failing_since)).group_by(Account.tenant_id)
        )
    }
    # Every tenant with a sync URL has a value: 0 when all its events are reported.
    synced = list(session.scalars(select(Tenant.id).where(Tenant.client_base_url.is_not(None))))
    snapshot.report_lag = dict.fromkeys(synced, 0.0)
    if synced:
        # Driven by the unreported events, each looked up by primary key for its tenant: a
        # plan whose cost follows the report backlog on both databases (a join lets the
        # planner scan every message instead).
        tenant_of = (
            select(Message.tenant_id)
            .where(Message.pk == MessageEvent.message_pk)
            .scalar_subquery()
            .label("tenant_id")
        )
        lag_rows = session.execute(
            select(tenant_of, func.min(MessageEvent.ts))
            .where(MessageEvent.reported_ts.is_(None))
            .group_by(tenant_of)
        ).all()
        snapshot.report_lag.update(
            {
                tenant_id: max(0.0, current - float(oldest))
                for tenant_id, oldest in lag_rows
                if tenant_id in snapshot.report_lag
            }
        )
    return snapshot
