"""End-to-end delivery rate into a loopback SMTP sink (its own process), beside the raw
limit of that sink fed by plain smtplib over 1 and 4 persistent connections.

    .venv/bin/python bench/deliver.py [--messages 5000]

Stacks: embedded (SQLite + SQLAlchemy broker, one worker with 4 threads, as `mail-proxy
start` runs it) and scale (PostgreSQL + Redis, 2 `celery worker` processes with their
default prefork pool, 2 children each on this 2-core machine).
"""

from __future__ import annotations

import argparse
import multiprocessing
import smtplib
import time
from pathlib import Path

from common import counting_sink, stack, wait_count, workdir

from tests.support.stack import make_messages

BODY = b"From: shop@example.com\r\nTo: a@example.org\r\nSubject: bench\r\n\r\nHello.\r\n"


def _raw_sender(port: int, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for _ in range(count):
            smtp.sendmail("shop@example.com", ["a@example.org"], BODY)


def raw_limit(messages: int, connections: int) -> float:
    with workdir() as tmp, counting_sink(Path(tmp)) as sink:
        per = messages // connections
        start = time.perf_counter()
        procs = [
            multiprocessing.Process(target=_raw_sender, args=(sink.port, per))
            for _ in range(connections)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        wait_count(sink, per * connections, 60)
        return per * connections / (time.perf_counter() - start)


def peak_rss_mb(pgid: int) -> float:
    """Sum of the peak RSS of every process in the worker's process group (prefork children)."""
    total_kb = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat, the process group
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        total_kb += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")
        )
    return total_kb / 1024


def end_to_end(kind: str, messages: int) -> tuple[float, float, list[float]]:
    with workdir() as tmp, counting_sink(Path(tmp)) as sink, stack(kind, Path(tmp)) as built:
        key = built.setup_tenant(sink.port)
        if kind == "embedded":  # as `mail-proxy start` runs it
            procs = [built.start_worker("bench", concurrency=4, pool="threads")]
        else:  # `celery -A mailproxy_workers worker` defaults: prefork, one child per core
            procs = [built.start_worker(f"bench{i}", concurrency=2, pool="prefork") for i in (1, 2)]
        start = time.perf_counter()
        for offset in range(0, messages, 1000):
            # One recipient each, like the raw senders' messages.
            batch = make_messages(min(1000, messages - offset), prefix=f"E{offset}", cc=[])
            answer = built.call(
                "POST", "/commands/add-messages", token=key, json={"messages": batch}
            )
            assert answer.json["queued"] == len(batch), answer.json
        enqueued = time.perf_counter() - start
        wait_count(sink, messages, 600)
        elapsed = time.perf_counter() - start
        built.wait_all_status(messages, "sent", timeout=120)
        return messages / elapsed, enqueued, [peak_rss_mb(p.pid) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    for connections in (1, 4):
        rate = raw_limit(args.messages, connections)
        print(f"[raw] smtplib, {connections} persistent connection(s): {rate:8.0f} messages/s")
    for kind in ("embedded", "scale"):
        rate, enqueued, rss = end_to_end(kind, args.messages)
        rss_text = ", ".join(f"{r:.0f} MB" for r in rss)
        print(
            f"[{kind}] end to end: {rate:8.0f} messages/s ({args.messages} messages, "
            f"enqueue took {enqueued:.1f} s; worker peak RSS {rss_text})"
        )


if __name__ == "__main__":
    main()
