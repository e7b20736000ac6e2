"""A rate limit holds across the whole fleet: 4 worker processes of 8 threads each, one
account limited to 30 a minute, and the sink never sees 31 inside any minute.

Windows are scaled by MAILPROXY_RATE_WINDOW_SCALE=0.1 (a minute lasts 6 s) so the test
takes seconds, not minutes; the accounting is the same code."""

from __future__ import annotations

import time

from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages

SCALE = 0.1
WINDOW = 60 * SCALE


def test_thirty_a_minute_across_four_workers_of_eight_threads(tmp_path, postgres_url, redis_url):
    arrivals: list[float] = []

    def slow_server(_received) -> None:
        # 40 ms a message: many messages are on the wire at once, so the fleet's claims
        # must count what is in flight, not only what the send log has recorded.
        arrivals.append(time.time())
        time.sleep(0.04)

    sink = SMTPSink(on_message=slow_server)
    sink.start()
    stack = Stack(tmp_path, postgres_url, redis_url, rate_window_scale=SCALE, sweep_interval=0.5)
    try:
        key = stack.setup_tenant(sink.port, account={"limit_per_minute": 30})
        for i in range(4):
            stack.start_worker(f"w{i}", concurrency=8, beat=(i == 0))
        stack.call(
            "POST", "/commands/add-messages", token=key, json={"messages": make_messages(75, cc=[])}
        )
        sink.wait_for(75, timeout=120)
        records = stack.wait_all_status(75, "sent", timeout=30)
    finally:
        stack.stop()
        sink.stop()
    arrivals.sort()
    busiest = max(sum(1 for t in arrivals if start <= t < start + WINDOW) for start in arrivals)
    assert busiest <= 30, busiest
    assert busiest >= 25  # the limit is used, not starved
    # 75 messages at 30 per window need at least two full windows after the first.
    assert arrivals[-1] - arrivals[0] >= 2 * WINDOW - 1
    assert all(r["attempts"] == 1 for r in records)  # waiting for the window costs no attempt
