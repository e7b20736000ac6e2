"""Scrape latency of GET /metrics with 100,000 messages in the table, on both stacks.

    .venv/bin/python bench/metrics.py [--messages 100000] [--scrapes 50] [--kind both]

The messages are written straight into the database, as a busy instance would hold them:
40% sent, 10% in error, 30% pending and due, 20% deferred to later, one event each for
the attempted ones, of which a share (``--backlog``, default 2%) is not yet acknowledged
by the tenants' applications; 20 tenants with two accounts each and their totals. The
tables are analysed afterwards, as autovacuum would. A scrape is the whole request through
the Flask app: the database queries of the delivery collector, the HTTP metrics and the
text encoding. The report-lag query reads the unreported events (a partial index), so its
cost follows the report backlog: try ``--backlog 0.5`` for a client that is down.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import sqlalchemy as sa
from common import stack, summary_ms, workdir

from mailproxy_models.db import session_scope
from mailproxy_models.delivery_totals import Outcome, count_outcomes

TENANTS = 20
CHUNK = 5000


def fill(built, total: int, backlog: float) -> None:
    engine = built.app.extensions["mailproxy"].engine
    for t in range(TENANTS):
        tenant = f"t{t:02d}"
        built.call("POST", "/tenant", json={"id": tenant, "client_base_url": "http://127.0.0.1:9"})
        for account in ("a", "b"):
            body = {"id": account, "tenant_id": tenant, "host": "127.0.0.1", "port": 2525}
            built.call("POST", "/account", json=body)
    now = time.time()
    rng = random.Random(7)
    with engine.begin() as conn:
        for start in range(0, total, CHUNK):
            rows = []
            for i in range(start, min(total, start + CHUNK)):
                share = i % 10
                status = (
                    "sent" if share < 4 else "error" if share < 5 else "pending" if share < 8
                    else "deferred"
                )  # fmt: skip
                created = now - rng.uniform(0, 86400)
                due = created if status != "deferred" else now + rng.uniform(60, 3600)
                rows.append(
                    {
                        "tenant_id": f"t{i % TENANTS:02d}",
                        "id": f"M{i:07d}",
                        "account_id": "a" if i % 2 else "b",
                        "priority": i % 4,
                        "status": status,
                        "payload": "{}",
                        "created_at": created,
                        "due_at": due,
                        "attempts": 0 if status == "pending" else 1,
                        "sent_ts": created + 2 if status == "sent" else None,
                        "reported_ts": None
                        if status in ("pending", "deferred") or rng.random() < backlog
                        else created + 5,
                    }
                )
            conn.execute(
                sa.text(
                    "INSERT INTO messages (tenant_id, id, account_id, priority, status, payload, "
                    "created_at, due_at, attempts, sent_ts, reported_ts) VALUES (:tenant_id, "
                    ":id, :account_id, :priority, :status, :payload, :created_at, :due_at, "
                    ":attempts, :sent_ts, :reported_ts)"
                ),
                rows,
            )
        conn.execute(
            sa.text(
                "INSERT INTO message_events (message_pk, ts, kind, reported_ts) "
                "SELECT pk, created_at + 2, CASE status WHEN 'sent' THEN 'sent' "
                "WHEN 'error' THEN 'error' ELSE 'deferred' END, "
                "CASE WHEN status = 'deferred' AND pk % 1000 >= :unreported "
                "THEN created_at + 5 ELSE reported_ts END "
                "FROM messages WHERE status <> 'pending'"
            ),
            {"unreported": int(backlog * 1000)},
        )
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    outcomes = [
        Outcome(f"t{i % TENANTS:02d}", "a" if i % 2 else "b", kind, 2.0 if kind == "sent" else None)
        for i in range(2000)
        for kind in ("sent", "failed", "deferred")
    ]
    with session_scope(built.app.extensions["mailproxy"].sessions) as session:
        count_outcomes(session, outcomes)


def measure(kind: str, total: int, scrapes: int, backlog: float) -> None:
    with workdir() as tmp, stack(kind, Path(tmp)) as built:
        started = time.perf_counter()
        fill(built, total, backlog)
        print(
            f"{kind}: {total} messages written in {time.perf_counter() - started:.1f} s, "
            f"report backlog {backlog:.0%} of the events"
        )
        client = built.app.test_client()
        client.get("/metrics")  # warm: connection pool, compiled statements
        samples = []
        for _ in range(scrapes):
            begin = time.perf_counter()
            answer = client.get("/metrics")
            samples.append(time.perf_counter() - begin)
            assert answer.status_code == 200 and b"mailproxy_delivery_metrics_up 1.0" in answer.data
        print(f"{kind}: GET /metrics  {summary_ms(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--backlog", type=float, default=0.02)
    parser.add_argument("--kind", choices=["embedded", "scale", "both"], default="both")
    args = parser.parse_args()
    for kind in ("embedded", "scale") if args.kind == "both" else (args.kind,):
        measure(kind, args.messages, args.scrapes, args.backlog)


if __name__ == "__main__":
    main()
