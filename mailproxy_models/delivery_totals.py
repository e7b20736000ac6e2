"""Running totals of delivery outcomes, kept apart from messages so retention never lowers them.

Prometheus counters must only go up, but messages and their events are purged. So every
outcome is also added here, in the same transaction that records it: one row per tenant,
account and kind with a count, and a latency histogram (first due -> sent) per tenant with
one row per bucket. Both are written with one multi-row upsert each, keys sorted, so
concurrent workers on PostgreSQL lock rows in the same order and never deadlock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, Float, ForeignKey, SmallInteger, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, insert_for

SENT, FAILED, DEFERRED, RATE_LIMITED, BOUNCED = (
    "sent",
    "failed",
    "deferred",
    "rate_limited",
    "bounced",
)
KINDS = (SENT, FAILED, DEFERRED, RATE_LIMITED, BOUNCED)

# Upper bounds in seconds of the delivery-latency buckets; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (
    1,
    2,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    21600,
    86400,
    math.inf,
)


class DeliveryTotal(Base):
    """How many outcomes of one kind an account has had since it first sent, never lowered."""

    __tablename__ = "delivery_totals"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)


class DeliveryLatencyTotal(Base):
    """Messages of a tenant sent within one latency bucket (not cumulative), and the sum
    of their latencies; ``bucket`` is an index into ``LATENCY_BUCKETS``."""

    __tablename__ = "delivery_latency_totals"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    seconds: Mapped[float] = mapped_column(Float, nullable=False)


@dataclass(frozen=True)
class Outcome:
    """One outcome to count; ``latency`` (seconds from when it was first due) only for ``sent``."""

    tenant_id: str
    account_id: str
    kind: str
    latency: float | None = None


def count_outcomes(session: Session, outcomes: Iterable[Outcome | tuple[str, str, str]]) -> None:
    """Add outcomes to the totals, in the caller's transaction (so an outcome is counted
    exactly when it is recorded). Plain ``(tenant_id, account_id, kind)`` tuples are
    accepted, e.g. ``count_outcomes(session, [("acme", "main", "bounced")])``.

    At most two statements whatever the number of outcomes; none when there are none.
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    latencies: dict[tuple[str, int], list[float]] = {}
    for item in outcomes:
        outcome = item if isinstance(item, Outcome) else Outcome(*item)
        if outcome.kind not in KINDS:
            raise ValueError(f"unknown outcome kind {outcome.kind!r}; one of {KINDS}")
        counts[(outcome.tenant_id, outcome.account_id, outcome.kind)] += 1
        if outcome.latency is not None:
            seconds = max(0.0, outcome.latency)
            latencies.setdefault((outcome.tenant_id, latency_bucket(seconds)), []).append(seconds)
    if counts:
        rows = [
            {"tenant_id": t, "account_id": a, "kind": k, "count": counts[(t, a, k)]}
            for t, a, k in sorted(counts)
        ]
        statement = insert_for(session, DeliveryTotal)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "account_id", "kind"],
                set_={"count": DeliveryTotal.count + statement.excluded["count"]},
            ),
            rows,
        )
    if latencies:
        rows_latency = [
            {"tenant_id": t, "bucket": b, "count": len(values), "seconds": sum(values)}
            for (t, b), values in sorted(latencies.items())
        ]
        statement = insert_for(session, DeliveryLatencyTotal)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "bucket"],
                set_={
                    "count": DeliveryLatencyTotal.count + statement.excluded["count"],
                    "seconds": DeliveryLatencyTotal.seconds + statement.excluded["seconds"],
                },
            ),
            rows_latency,
        )


def latency_bucket(seconds: float) -> int:
    """Index of the first bucket whose upper bound holds ``seconds``."""
    return next(i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound)


@dataclass
class LatencyHistogram:
    """Cumulative bucket counts (one per ``LATENCY_BUCKETS`` bound), total count and sum."""

    cumulative: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total_seconds: float = 0.0

    @property
    def count(self) -> int:
        return self.cumulative[-1]


def read_totals(session: Session) -> dict[tuple[str, str, str], int]:
    """Every total, keyed by (tenant_id, account_id, kind). One query on a small table."""
    rows = session.execute(
        select(
            DeliveryTotal.tenant_id,
            DeliveryTotal.account_id,
            DeliveryTotal.kind,
            DeliveryTotal.count,
        )
    ).all()
    return {(tenant, account, kind): int(count) for tenant, account, kind, count in rows}


def read_latency(session: Session) -> dict[str, LatencyHistogram]:
    """The latency histogram of each tenant that has sent. One query on a small table."""
    histograms: dict[str, LatencyHistogram] = {}
    rows = session.execute(
        select(
            DeliveryLatencyTotal.tenant_id,
            DeliveryLatencyTotal.bucket,
            DeliveryLatencyTotal.count,
            DeliveryLatencyTotal.seconds,
        )
    ).all()
    per_bucket: dict[str, list[int]] = {}
    for tenant_id, bucket, count, seconds in rows:
        histogram = histograms.setdefault(tenant_id, LatencyHistogram())
        counts = per_bucket.setdefault(tenant_id, [0] * len(LATENCY_BUCKETS))
        counts[min(int(bucket), len(LATENCY_BUCKETS) - 1)] += int(count)
        histogram.total_seconds += float(seconds)
    for tenant_id, counts in per_bucket.items():
        running = 0
        for index, value in enumerate(counts):
            running += value
            histograms[tenant_id].cumulative[index] = running
    return histograms
