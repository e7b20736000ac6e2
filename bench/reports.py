"""Delivery-report throughput: unreported outcomes pushed to a client application on
loopback, PostgreSQL + Redis, one `celery worker` (prefork, 2 children) with beat.

    .venv/bin/python bench/reports.py [--entries 20000] [--batch 500]

The outcomes are written straight into the database (as workers would have recorded
them), so the figure is the report path alone: query, POST, acknowledgement.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import sqlalchemy as sa
from common import stack, workdir

from tests.support.client_app import ClientApp
from tests.support.stack import make_messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    client = ClientApp().start()
    try:
        with workdir() as tmp, stack("scale", Path(tmp)) as built:
            built.settings.report_batch_size = args.batch
            key = built.setup_tenant(2525)
            built.call("PUT", "/tenant/acme", token=key, json={"client_base_url": client.url})
            built.call("POST", "/commands/suspend", token=key, json={})  # store, do not send
            for offset in range(0, args.entries, 1000):
                batch = make_messages(min(1000, args.entries - offset), prefix=f"R{offset}", cc=[])
                built.call("POST", "/commands/add-messages", token=key, json={"messages": batch})
            with built.app.extensions["mailproxy"].engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE messages SET status = 'sent', sent_ts = created_at, attempts = 1"
                    )
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO message_events (message_pk, ts, kind, smtp_code, smtp_text) "
                        "SELECT pk, created_at, 'sent', 250, 'OK' FROM messages"
                    )
                )
            env_batch = {"report_batch_size": args.batch, "report_sync_interval": 0.5}
            for name, value in env_batch.items():
                setattr(built.settings, name, value)
            start = time.perf_counter()
            built.start_worker("reports", concurrency=2, pool="prefork", beat=True)
            while len(client.received) < args.entries:
                if time.perf_counter() - start > 600:
                    raise TimeoutError(f"{len(client.received)} of {args.entries} in 600 s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - start
            calls = len(client.calls)
            print(
                f"[scale] delivery reports: {args.entries / elapsed:8.0f} entries/s "
                f"({args.entries} entries in {calls} calls of up to {args.batch}, "
                f"{elapsed:.1f} s including worker start)"
            )
    finally:
        client.stop()


if __name__ == "__main__":
    main()
