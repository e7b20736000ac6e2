"""Latency of POST /commands/add-messages over HTTP, 1 and 1,000 messages per call, on the
embedded stack (SQLite, `mail-proxy start`'s threaded server) and at scale (PostgreSQL +
Redis, gunicorn with 2 workers).

    .venv/bin/python bench/enqueue.py [--single 300] [--bulk 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import requests
from common import http_api, stack, summary_ms, workdir

from tests.support.stack import make_messages


def measure(base: str, key: str, batch: int, calls: int, tag: str) -> list[float]:
    session = requests.Session()
    session.headers["X-API-Token"] = key
    samples = []
    for call in range(calls):
        messages = make_messages(batch, prefix=f"{tag}{call}")
        start = time.perf_counter()
        answer = session.post(
            f"{base}/commands/add-messages", json={"messages": messages}, timeout=120
        )
        samples.append(time.perf_counter() - start)
        assert answer.ok and answer.json()["queued"] == batch, answer.text
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=300, help="calls with 1 message")
    parser.add_argument("--bulk", type=int, default=20, help="calls with 1,000 messages")
    args = parser.parse_args()
    for kind in ("embedded", "scale"):
        with workdir() as tmp, stack(kind, Path(tmp)) as built, http_api(built, kind) as base:
            key = built.setup_tenant(2525)
            measure(base, key, 1, 20, "warm")
            single = measure(base, key, 1, args.single, "one")
            bulk = measure(base, key, 1000, args.bulk, "bulk")
            print(f"[{kind}] add-messages, 1 message/call:      {summary_ms(single)}")
            print(f"[{kind}] add-messages, 1,000 messages/call: {summary_ms(bulk)}")


if __name__ == "__main__":
    main()
