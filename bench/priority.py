"""Latency of an immediate message posted behind a backlog of low-priority ones, on
PostgreSQL + Redis with 2 `celery worker` processes (default prefork pool).

    .venv/bin/python bench/priority.py [--backlog 5000] [--probes 10]

Posts the backlog (priority 3), starts the workers, then posts one immediate message
(priority 0) at a time while the backlog drains and measures until it reaches the sink.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import stack, summary_ms, workdir

from tests.support.smtp_sink import SMTPSink
from tests.support.stack import make_messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--probes", type=int, default=10)
    args = parser.parse_args()
    arrivals: dict[str, float] = {}

    def arrived(received) -> None:  # in the sink's thread
        msg_id = received.message()["X-Mailproxy-ID"]
        if msg_id.startswith("URGENT"):
            arrivals[msg_id] = time.perf_counter()

    sink = SMTPSink(on_message=arrived).start()
    try:
        with workdir() as tmp, stack("scale", Path(tmp)) as built:
            key = built.setup_tenant(sink.port)
            for offset in range(0, args.backlog, 1000):
                batch = make_messages(
                    min(1000, args.backlog - offset), prefix=f"L{offset}", priority=3, cc=[]
                )
                built.call("POST", "/commands/add-messages", token=key, json={"messages": batch})
            for i in (1, 2):
                built.start_worker(f"prio{i}", concurrency=2, pool="prefork")
            time.sleep(1.0)  # the backlog is being worked on
            latencies, left = [], []
            for probe in range(args.probes):
                msg_id = f"URGENT-{probe:05d}"
                message = make_messages(1, prefix="URGENT", priority=0, cc=[])[0] | {"id": msg_id}
                posted = time.perf_counter()
                built.call(
                    "POST", "/commands/add-messages", token=key, json={"messages": [message]}
                )
                while msg_id not in arrivals:
                    if time.perf_counter() - posted > 30:
                        raise TimeoutError(f"{msg_id} did not arrive within 30 s")
                    time.sleep(0.002)
                latencies.append(arrivals[msg_id] - posted)
                left.append(args.backlog - len(sink.messages) + probe + 1)
                time.sleep(0.3)
            print(
                f"[scale] immediate behind {args.backlog} low: {summary_ms(latencies)}; "
                f"max {max(latencies) * 1000:.0f} ms; low-priority messages still waiting "
                f"at the probes: {min(left)}..{max(left)}"
            )
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
