"""A real worker SIGKILLed in the middle of its batches, on PostgreSQL + Redis: every
message ends `sent`; a message reached the server twice only if it was the one in flight on
one of the killed worker's threads; and every copy of a message carries its one
Message-ID."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest
import redis

from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages, wait_until

TOTAL = 400
THREADS = 2  # of the worker that is killed: at most one message in flight on each


@pytest.fixture
def redis_url(redis_server: str) -> str:
    redis.Redis.from_url(redis_server).flushdb()
    return redis_server


@pytest.fixture
def slow_sink() -> Iterator[SMTPSink]:
    # 20 ms per message: batches take long enough for the kill to land in the middle of one.
    sink = SMTPSink(data_delay=0.02).start()
    yield sink
    sink.stop()


@pytest.fixture
def stack(tmp_path, postgres_url, redis_url) -> Iterator[Stack]:
    built = Stack(
        tmp_path,
        postgres_url,
        redis_url,
        sweep_interval=1.0,
        lease_seconds=4,
        retry_schedule=[1, 2, 4, 8, 8, 8],
    )
    yield built
    built.stop()


def test_a_killed_worker_resends_at_most_its_messages_in_flight_with_their_message_id(
    stack, slow_sink
):
    key = stack.setup_tenant(slow_sink.port)
    doomed = stack.start_worker("doomed", concurrency=THREADS)
    stack.start_worker("survivor", concurrency=2, beat=True)
    answer = stack.call(
        "POST",
        "/commands/add-messages",
        token=key,
        json={"messages": make_messages(TOTAL, prefix="K", cc=[])},
    )
    assert answer.json["queued"] == TOTAL
    wait_until(lambda: len(slow_sink.messages) >= 120, timeout=120, interval=0.01)
    stack.kill_worker(doomed)

    records = stack.wait_all_status(TOTAL, "sent", timeout=240)
    copies: dict[str, list[str]] = defaultdict(list)
    for received in slow_sink.messages:
        mime = received.message()
        copies[mime["X-Mailproxy-ID"]].append(mime["Message-ID"])
    assert set(copies) == {r["id"] for r in records}
    resent = {msg_id: ids for msg_id, ids in copies.items() if len(ids) > 1}
    assert sum(len(ids) - 1 for ids in resent.values()) <= THREADS, resent
    assert all(len(set(ids)) == 1 for ids in copies.values()), resent
    shown = {r["id"]: r["smtp_message_id"] for r in stack.all_messages()}
    assert all(shown[msg_id] == ids[0] for msg_id, ids in copies.items())
