"""A tenant's rate limit holds over all its accounts, and an account's batch_size bounds its
SMTP sessions, through the API, real worker processes and a real SMTP server, on SQLite
with the embedded broker and on PostgreSQL with Redis.

Windows are scaled by MAILPROXY_RATE_WINDOW_SCALE=0.1 (a minute lasts 6 s)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages, wait_until

SCALE = 0.1
WINDOW = 60 * SCALE


@pytest.fixture(params=["sqlite", "postgres"])
def stack_urls(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mailproxy.sqlite'}", None
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("redis_url")


def test_a_tenant_limit_of_four_a_minute_over_two_accounts_sends_four_then_defers(
    tmp_path, stack_urls
):
    arrivals: list[float] = []
    sink = SMTPSink(on_message=lambda _received: arrivals.append(time.time()))
    sink.start()
    database_url, broker_url = stack_urls
    stack = Stack(tmp_path, database_url, broker_url, rate_window_scale=SCALE, sweep_interval=0.5)
    try:
        key = stack.setup_tenant(sink.port)
        other = {"id": "second", "host": "127.0.0.1", "port": sink.port, "use_tls": False}
        assert stack.call("POST", "/account", token=key, json=other).status_code == 200
        answer = stack.call("PUT", "/tenant/acme", json={"rate_limits": {"per_minute": 4}})
        assert answer.status_code == 200, answer.json
        stack.start_worker("w1", concurrency=2, beat=True)
        messages = make_messages(3, prefix="A", account_id="main", cc=[]) + make_messages(
            3, prefix="B", account_id="second", cc=[]
        )
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})
        sink.wait_for(6, timeout=60)
        records = stack.wait_all_status(6, "sent", timeout=30)
        history = stack.call(
            "GET", "/messages", query_string={"include_history": "true", "limit": 10}
        ).json["messages"]
    finally:
        stack.stop()
        sink.stop()
    arrivals.sort()
    first_window = [t for t in arrivals if t < arrivals[0] + WINDOW - 0.5]
    assert len(first_window) == 4, arrivals
    assert arrivals[4] - arrivals[0] >= WINDOW - 0.5  # the rest waited for the window
    limited = {m["id"] for m in history if any(e["kind"] == "rate_limited" for e in m["events"])}
    assert len(limited) == 2, history
    assert {m["account_id"] for m in records} == {"main", "second"}
    assert all(r["attempts"] == 1 for r in records)  # waiting for the window costs no attempt


def test_batch_size_two_sends_five_messages_over_three_smtp_sessions(tmp_path, stack_urls):
    sink = SMTPSink()
    sink.start()
    database_url, broker_url = stack_urls
    stack = Stack(tmp_path, database_url, broker_url)
    try:
        key = stack.setup_tenant(sink.port, account={"batch_size": 2})
        stack.start_worker("w1")  # one thread: one pooled session at a time
        messages = make_messages(5, cc=[])
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})
        received = sink.wait_for(5, timeout=60)
        wait_until(lambda: len(stack.all_messages(status="sent")) == 5, timeout=30)
    finally:
        stack.stop()
        sink.stop()
    per_session = Counter(r.peer for r in received)
    assert sorted(per_session.values()) == [1, 2, 2], per_session
