"""Does anything slow down as history piles up? Fills a PostgreSQL database of its own with
N messages of realistic history (90% sent with their events, reported; 10% deferred to a
future time), then times the hot paths: add-messages (1 and 1,000 per call, through the
real Flask app in this process), a sweeper pass, a claim of 50, /metrics, a tenant's
/status, the first page of /messages?active_only, and a retention purge pass (reported
messages and the send log) that finds nothing to delete.

    .venv/bin/python bench/growth.py --stored 1000000 [--admin-url URL] [--explain]

The database (``mp_growth_<random>``) is created on the server named by --admin-url and
dropped at the end. Figures are medians of several runs of each step; the load average of
the machine is printed beside them, since other programs share it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import event  # noqa: E402

from mailproxy_models.claims import claim_due_messages, due_priorities, queue_depths  # noqa: E402
from mailproxy_models.db import now, session_scope  # noqa: E402
from mailproxy_models.messages import MessageFilter, list_messages  # noqa: E402
from mailproxy_models.ratelimits import LONGEST_WINDOW  # noqa: E402
from mailproxy_models.reports import purge_reported  # noqa: E402
from mailproxy_models.send_log import purge_send_log  # noqa: E402
from tests.support.stack import Stack, make_messages  # noqa: E402

DAY = 86400
# One stored payload, about the size of a short transactional mail.
PAYLOAD = (
    '{"id": "x", "from": "Shop <shop@example.com>", "to": ["user@example.org"], "cc": [],'
    ' "bcc": [], "subject": "Your order has shipped", "body": "Hello, your order is on its'
    ' way. Thank you for shopping with us.", "content_type": "plain", "headers":'
    ' {"X-Campaign": "nov"}, "attachments": [], "deferred_ts": null, "priority": 2}'
)


@contextmanager
def own_database(admin_url: str) -> Iterator[str]:
    name = f"mp_growth_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def fill(engine: sa.Engine, stored: int) -> float:
    """N messages of tenant acme, account main, in one statement per table; returns seconds.

    The first 90% were created over the last 30 days and sent, each with its event, all
    reported a day ago (so the retention purge, 7 days by default, finds nothing); the
    newest 10% are deferred to tomorrow. The send log holds the last day's sends, which is
    what retention keeps of it."""
    started = time.perf_counter()
    current = now()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            """
            INSERT INTO messages (tenant_id, id, account_id, priority, status, payload,
                created_at, deferred_ts, due_at, attempts, sent_ts, reported_ts,
                smtp_message_id, verp_token)
            SELECT 'acme', 'hist-' || g, 'main', 2,
                CASE WHEN g > %(n)s * 0.9 THEN 'deferred' ELSE 'sent' END,
                %(payload)s::json,
                %(now)s - 30 * 86400 + g * (30 * 86400.0 / %(n)s),
                CASE WHEN g > %(n)s * 0.9 THEN %(now)s + 86400 + g %% 3600 END,
                CASE WHEN g > %(n)s * 0.9 THEN %(now)s + 86400 + g %% 3600
                     ELSE %(now)s - 30 * 86400 + g * (30 * 86400.0 / %(n)s) END,
                1,
                CASE WHEN g > %(n)s * 0.9 THEN NULL
                     ELSE %(now)s - 30 * 86400 + g * (30 * 86400.0 / %(n)s) + 1 END,
                CASE WHEN g > %(n)s * 0.9 THEN NULL ELSE %(now)s - 86400 END,
                CASE WHEN g > %(n)s * 0.9 THEN NULL ELSE '<hist-' || g || '@example.com>' END,
                substr(md5(g::text), 1, 12)
            FROM generate_series(1, %(n)s) AS g
            """,
            {"payload": PAYLOAD, "now": current, "n": stored},
        )
        conn.exec_driver_sql(
            """
            INSERT INTO message_events (message_pk, ts, kind, description, smtp_code,
                smtp_text, worker, reported_ts)
            SELECT pk, due_at, CASE WHEN status = 'sent' THEN 'sent' ELSE 'deferred' END,
                CASE WHEN status = 'sent' THEN '250 OK' ELSE '451 try later' END,
                CASE WHEN status = 'sent' THEN 250 ELSE 451 END,
                'OK', 'w1', %(now)s - 86400
            FROM messages WHERE tenant_id = 'acme'
            """,
            {"now": current},
        )
        conn.exec_driver_sql(
            """
            INSERT INTO send_log (tenant_id, account_id, message_pk, ts)
            SELECT tenant_id, account_id, pk, sent_ts FROM messages
            WHERE status = 'sent' AND sent_ts > %(since)s
            """,
            {"since": current - LONGEST_WINDOW},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


def timed(step: Callable[[], Any], runs: int) -> float:
    """Median seconds of ``runs`` runs after one warm-up run."""
    step()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(stack: Stack, key: str, args: argparse.Namespace) -> dict[str, float]:
    sessions = stack.app.extensions["mailproxy"].sessions
    client = stack.client
    tenant = {"X-API-Token": key}
    calls = [0]

    def add(count: int) -> Callable[[], None]:
        def call() -> None:
            calls[0] += 1
            batch = make_messages(count, prefix=f"add{calls[0]}", cc=[])
            answer = client.post("/commands/add-messages", json={"messages": batch}, headers=tenant)
            assert answer.status_code == 200 and answer.json["queued"] == count, answer.json

        return call

    def sweeper() -> None:
        with session_scope(sessions) as session:
            due_priorities(session)

    def claim() -> None:
        # Claimed and rolled back: every run claims the same 50 due messages.
        session = sessions()
        try:
            assert len(claim_due_messages(session, 2, 50, 300)) == 50
        finally:
            session.rollback()
            session.close()

    def get(path: str, headers: dict[str, str]) -> Callable[[], None]:
        def call() -> None:
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, answer.data[:300]

        return call

    def purge() -> None:
        with session_scope(sessions) as session:
            assert purge_reported(session, now() - stack.settings.retention_days * DAY) == 0
            purge_send_log(session, now() - LONGEST_WINDOW)

    admin = {"X-API-Token": stack.settings.admin_token.get_secret_value()}  # type: ignore[union-attr]
    # Reads first, on the same 200 due messages; then the adds, which grow the queue.
    figures = {
        "sweeper pass (due priorities)": timed(sweeper, args.runs * 5),
        "claim of 50 (incl. read-back)": timed(claim, args.runs * 5),
        "GET /metrics": timed(get("/metrics", admin), args.runs),
        "GET /status as the tenant": timed(get("/status", tenant), args.runs * 5),
        "GET /messages?active_only, 1st page": timed(
            get("/messages?active_only=true", tenant), args.runs * 5
        ),
        "retention purge pass (finds nothing)": timed(purge, args.runs * 2),
        "add-messages, 1 message": timed(add(1), args.runs * 5),
        "add-messages, 1,000 messages": timed(add(1000), args.runs),
    }
    return figures


def explain_hot_queries(engine: sa.Engine, sessions: Any) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements the claim, the tenant's listing and its
    /status counts really run (captured as they execute), in a transaction rolled back."""
    captured: list[tuple[str, str, Any]] = []
    step = [""]

    def keep(_conn, _cursor, statement, parameters, _context, executemany):  # type: ignore[no-untyped-def]
        if not executemany and statement.lstrip().upper().startswith("SELECT"):
            captured.append((step[0], statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    session = sessions()
    try:
        step[0] = "claim"
        claim_due_messages(session, 2, 50, 300)
        step[0] = "GET /messages?active_only (tenant), first page"
        list_messages(session, MessageFilter("acme", active_only=True))
        step[0] = "GET /status (tenant): waiting per priority"
        queue_depths(session, "acme")
        event.remove(engine, "before_cursor_execute", keep)
        for title, statement, parameters in captured:
            if "pg_advisory" in statement or "FROM tenants" in statement.split("WHERE")[0]:
                continue
            rows = session.connection().exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
            )
            print(f"\n-- {title}\n{statement.strip()}\n")
            print("\n".join(row[0] for row in rows))
    finally:
        session.rollback()
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stored", type=int, default=1000, help="messages of history")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MAILPROXY_BENCH_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs per step (some steps x5)")
    parser.add_argument("--explain", action="store_true", help="print the plans of the claim")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with own_database(args.admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), url, None, sweep_interval=3600)
        try:
            key = stack.setup_tenant(2525)
            engine = stack.app.extensions["mailproxy"].engine
            fill_seconds = fill(engine, args.stored)
            # Due messages for the claim to take (and put back) on every run.
            stack.client.post(
                "/commands/add-messages",
                json={"messages": make_messages(200, prefix="due", cc=[])},
                headers={"X-API-Token": key},
            )
            figures = measure(stack, key, args)
            with engine.connect() as conn:
                size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
            if args.explain:
                explain_hot_queries(engine, stack.app.extensions["mailproxy"].sessions)
        finally:
            stack.stop()
    load_after = os.getloadavg()
    print(
        f"\n{args.stored:,} stored messages (filled in {fill_seconds:.1f} s), "
        f"database {size / 1e6:,.0f} MB; load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after, on {os.cpu_count()} cores"
    )
    print(f"| step | median, {args.stored:,} stored |")
    print("|---|---|")
    for name, seconds in figures.items():
        print(f"| {name} | {seconds * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
