"""Messages composed per second by the worker's composer (no network), per kind of message.

    .venv/bin/python bench/compose.py [--messages 20000]

Delivery throughput depends on composing staying cheap. Each figure is the best of three
runs of composing the same payload ``--messages`` times, in CPU time (other load on a shared
machine counts less).
"""

from __future__ import annotations

import argparse
import base64
import time

from mailproxy_workers.composer import compose

BASE = {
    "id": "MSG-1",
    "from": "Shop <shop@example.com>",
    "to": ["user@example.org"],
    "cc": ["copy@example.net"],
    "subject": "Order 42 is ready",
    "body": "Hello, your order is ready.\n",
    "content_type": "plain",
    "headers": {"X-Campaign": "nov"},
}
KINDS = {
    "plain ASCII": BASE,
    "non-ASCII subject": {**BASE, "subject": "Ihre Bestellung Nr. 42 ist fertig ✓ — Grüße"},
    "long subject (300 chars)": {**BASE, "subject": "Order details " * 22},
    "SMTPUTF8 recipient": {**BASE, "to": ["zoë@example.org"]},
    "stored 20 KB attachment": {
        **BASE,
        "attachments": [
            {"filename": "r.pdf", "storage_path": base64.b64encode(b"x" * 20_000).decode()}
        ],
    },
}


def rate(payload: dict, messages: int) -> float:
    best = 0.0
    for _ in range(3):
        start = time.process_time()
        for _ in range(messages):
            compose(payload)
        best = max(best, messages / (time.process_time() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    for name, payload in KINDS.items():
        print(f"{name:28s} {rate(payload, args.messages):10.0f} msg/s")


if __name__ == "__main__":
    main()
