"""Prometheus metrics of the API: HTTP metrics of this process, delivery metrics of the fleet.

HTTP metrics (``flask_http_request_*``) come from prometheus-flask-exporter. Under gunicorn
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's own variable, set by
``mailproxy_api/gunicorn_conf.py``) names a directory where every worker process writes its
values; a scrape answered by any worker adds up all of them. Without it (``mail-proxy
start``, one process) the values live in memory.

Delivery metrics (``mailproxy_*``) are read from the database on each scrape by
``DeliveryCollector``, so they are the same whichever process, on whichever host, answers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_flask_exporter import PrometheusMetrics
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailproxy_models.db import session_scope
from mailproxy_models.delivery_metrics import delivery_snapshot
from mailproxy_models.delivery_totals import KINDS, LATENCY_BUCKETS
from mailproxy_models.message_validation import PRIORITIES

log = logging.getLogger(__name__)

# name of each counter (without _total) by the kind in delivery_totals, with its help text
COUNTERS = {
    "sent": ("mailproxy_messages_sent", "Messages accepted by the SMTP server (250 to DATA)."),
    "failed": (
        "mailproxy_messages_failed",
        "Messages ended in error (permanent failure, out of retries, or refused by a rate "
        "limit with limit_behavior reject).",
    ),
    "deferred": (
        "mailproxy_messages_deferred",
        "Attempts ended in a temporary failure; the message waits for a retry.",
    ),
    "rate_limited": (
        "mailproxy_messages_rate_limited",
        "Messages held back because their account reached a rate limit.",
    ),
    "bounced": ("mailproxy_messages_bounced", "Bounces received for sent messages."),
}
QUEUE_DEPTH = "mailproxy_queue_depth"
OLDEST_DUE_AGE = "mailproxy_oldest_pending_age_seconds"
LATENCY = "mailproxy_delivery_latency_seconds"
REPORT_LAG = "mailproxy_report_lag_seconds"
METRICS_UP = "mailproxy_delivery_metrics_up"
SCRAPE_SECONDS = "mailproxy_delivery_metrics_scrape_seconds"
FAILING_ACCOUNTS = "mailproxy_accounts_failing"


class DeliveryCollector(Collector):
    """Delivery metrics of the whole fleet, read from the database at scrape time.

    A database that does not answer gives ``mailproxy_delivery_metrics_up 0`` and no other
    delivery metric, never a failed scrape: the HTTP metrics still arrive."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            with session_scope(self.sessions) as session:
                snapshot = delivery_snapshot(session)
        except SQLAlchemyError as exc:
            log.warning("delivery metrics unavailable, the database did not answer: %s", exc)
            yield GaugeMetricFamily(METRICS_UP, "1 when delivery metrics were read.", value=0)
            return
        yield from self._counters(snapshot.totals)
        depth = GaugeMetricFamily(
            QUEUE_DEPTH,
            "Messages waiting and due now (pending or deferred, due time passed), by priority.",
            labels=["priority"],
        )
        age = GaugeMetricFamily(
            OLDEST_DUE_AGE,
            "Seconds the longest-waiting due message has been due (0 when none), by priority.",
            labels=["priority"],
        )
        for priority, name in PRIORITIES.items():
            depth.add_metric([name], snapshot.due.get(priority, 0))
            age.add_metric([name], snapshot.oldest_due_age.get(priority, 0.0))
        yield depth
        yield age
        latency = HistogramMetricFamily(
            LATENCY,
            "Seconds from a message's creation to its 250 from the server.",
            labels=["tenant"],
        )
        for tenant_id, histogram in sorted(snapshot.latency.items()):
            buckets = [
                (_bound(bound), float(count))
                for bound, count in zip(LATENCY_BUCKETS, histogram.cumulative, strict=True)
            ]
            latency.add_metric([tenant_id], buckets, histogram.total_seconds)
        yield latency
        lag = GaugeMetricFamily(
            REPORT_LAG,
            "Seconds since the oldest delivery-report entry not yet acknowledged by the "
            "tenant's application (0 when all are), per tenant with a sync URL.",
            labels=["tenant"],
        )
        for tenant_id, seconds in sorted(snapshot.report_lag.items()):
            lag.add_metric([tenant_id], seconds)
        yield lag
        failing = GaugeMetricFamily(
            FAILING_ACCOUNTS,
            "Accounts whose SMTP server refused their credentials (cleared by the next "
            "success), per tenant with accounts.",
            labels=["tenant"],
        )
        for tenant_id, count in sorted(snapshot.failing_accounts.items()):
            failing.add_metric([tenant_id], count)
        yield failing
        yield GaugeMetricFamily(METRICS_UP, "1 when delivery metrics were read.", value=1)
        yield GaugeMetricFamily(
            SCRAPE_SECONDS,
            "Seconds the database queries of this scrape took.",
            value=time.perf_counter() - started,
        )

    @staticmethod
    def _counters(totals: dict[tuple[str, str, str], int]) -> Iterator[Metric]:
        accounts = sorted({(tenant, account) for tenant, account, _kind in totals})
        for kind in KINDS:
            name, documentation = COUNTERS[kind]
            family = CounterMetricFamily(name, documentation, labels=["tenant", "account"])
            for tenant, account in accounts:
                family.add_metric([tenant, account], totals.get((tenant, account, kind), 0))
            yield family


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(float(bound))


def multiprocess_dir() -> str | None:
    """prometheus_client's own variable (not a mailproxy setting): set, every process of
    the server writes its values into that directory."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def install_metrics(app: Flask, sessions: sessionmaker[Session]) -> CollectorRegistry:
    """Track the app's requests and return the registry ``/metrics`` serves."""
    # A registry of the app's own: several apps in one process (tests) never collide.
    metrics = PrometheusMetrics(app, path=None, group_by="endpoint", registry=CollectorRegistry())
    if multiprocess_dir():
        # The metric objects write to files; what is served is every process's files.
        served = CollectorRegistry()
        MultiProcessCollector(served)
    else:
        served = metrics.registry
    served.register(DeliveryCollector(sessions))
    return served
