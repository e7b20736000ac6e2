"""End to end on PostgreSQL with real ``celery worker`` processes, on Redis and on RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailproxy_models.wakeups import MAINTENANCE_QUEUE, QUEUE_BY_PRIORITY
from tests.e2e.checks import assert_all_sent_with_250, assert_delivered_as_posted, mailproxy_ids
from tests.support.servers import free_port, purge_amqp_queues
from tests.support.stack import Stack, make_messages, wait_until


@pytest.fixture(params=["redis", "amqp"])
def broker_url(request) -> str:
    """Each test of this module twice: on Redis and on RabbitMQ (one node for the session)."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    node = request.getfixturevalue("rabbitmq_node")
    purge_amqp_queues(node.url, [*QUEUE_BY_PRIORITY.values(), MAINTENANCE_QUEUE])
    return str(node.url)


@pytest.fixture
def pg_stack(tmp_path, postgres_url: str, broker_url: str) -> Iterator[Stack]:
    stack = Stack(tmp_path, postgres_url, broker_url)
    try:
        yield stack
    finally:
        stack.stop()


def test_hundred_messages_posted_at_once_all_arrive_and_are_sent(pg_stack, smtp_sink):
    key = pg_stack.setup_tenant(smtp_sink.port)
    pg_stack.start_worker("w1", concurrency=2)
    posted = make_messages(100, bcc=["hidden@example.org"])
    answer = pg_stack.call("POST", "/commands/add-messages", token=key, json={"messages": posted})
    assert answer.status_code == 200 and answer.json == {"ok": True, "queued": 100, "rejected": []}

    received = smtp_sink.wait_for(100, timeout=60)
    records = pg_stack.wait_all_status(100, "sent", timeout=30)
    assert_delivered_as_posted(posted, received)
    assert_all_sent_with_250(pg_stack, records)


def test_two_workers_deliver_five_hundred_messages_exactly_once(pg_stack, smtp_sink):
    key = pg_stack.setup_tenant(smtp_sink.port)
    pg_stack.start_worker("w1", concurrency=2)
    pg_stack.start_worker("w2", concurrency=2)
    for start in range(0, 500, 100):
        batch = make_messages(100, prefix=f"B{start}")
        answer = pg_stack.call(
            "POST", "/commands/add-messages", token=key, json={"messages": batch}
        )
        assert answer.json["queued"] == 100

    received = smtp_sink.wait_for(500, timeout=120)
    pg_stack.wait_all_status(500, "sent", timeout=30)
    counts = mailproxy_ids(received)
    assert len(counts) == 500 and set(counts.values()) == {1}
    # Both workers took part: claims are spread, not serialised behind one process.
    workers = {
        e["worker"] for m in pg_stack.all_messages(include_history="true") for e in m["events"]
    }
    assert len(workers) >= 2, workers


def test_worker_killed_mid_batch_loses_nothing_and_marks_nothing_sent_without_250(
    pg_stack, smtp_sink
):
    key = pg_stack.setup_tenant(smtp_sink.port)
    victim = pg_stack.start_worker("victim")
    posted = make_messages(300)
    pg_stack.call("POST", "/commands/add-messages", token=key, json={"messages": posted})
    wait_until(lambda: len(smtp_sink.messages) >= 40, timeout=60, interval=0.01)
    pg_stack.kill_worker(victim)
    delivered_before_kill = len(smtp_sink.messages)
    assert delivered_before_kill < 300, "the worker finished before it could be killed"

    # A new worker with the sweeper finds the messages whose claim expired with the victim.
    pg_stack.start_worker("rescuer", concurrency=2, beat=True)
    records = pg_stack.wait_all_status(300, "sent", timeout=120)
    counts = mailproxy_ids(smtp_sink.messages)
    assert set(counts) == {m["id"] for m in posted}  # none lost
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= pg_stack.settings.delivery_batch_size  # only the victim's in-flight batch
    assert_all_sent_with_250(pg_stack, records)


def test_smtp_server_refusing_connections_leaves_messages_waiting(pg_stack):
    closed_port = free_port()  # nothing listens here
    key = pg_stack.setup_tenant(closed_port)
    pg_stack.start_worker("w1")
    pg_stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(5)})

    def attempted() -> list | None:
        records = pg_stack.all_messages(include_history="true")
        return records if all(r["events"] for r in records) else None

    records = wait_until(attempted, timeout=30)
    for record in records:
        assert record["status"] == "deferred" and record["sent_ts"] is None
        assert record["deferred_ts"] > record["created_at"]
        assert all(e["kind"] == "deferred" for e in record["events"])
        assert "cannot talk to 127.0.0.1" in record["events"][0]["description"]


@pytest.mark.parametrize("priority", [0, 3])
def test_each_priority_is_routed_to_its_own_queue(pg_stack, smtp_sink, priority):
    key = pg_stack.setup_tenant(smtp_sink.port)
    queue = {0: "mail.immediate", 3: "mail.low"}[priority]
    pg_stack.start_worker("only-one-queue", queues=queue)
    message = make_messages(1, priority=priority)
    pg_stack.call("POST", "/commands/add-messages", token=key, json={"messages": message})
    smtp_sink.wait_for(1, timeout=30)


def test_run_now_wakes_delivery_of_messages_that_became_due(
    tmp_path, postgres_url, broker_url, smtp_sink
):
    import time

    from tests.support.stack import Stack

    # The sweeper would only run after a minute: what delivers here is run-now.
    stack = Stack(tmp_path, postgres_url, broker_url, sweep_interval=60.0)
    try:
        key = stack.setup_tenant(smtp_sink.port)
        stack.start_worker("w1", beat=True)
        due = time.time() + 2
        message = make_messages(1, deferred_ts=due)
        assert (
            stack.call(
                "POST", "/commands/add-messages", token=key, json={"messages": message}
            ).json["queued"]
            == 1
        )
        time.sleep(max(0.0, due - time.time()) + 0.2)
        assert smtp_sink.messages == []  # nothing woke delivery when it became due
        answer = stack.call("POST", "/commands/run-now", token=key)
        assert answer.json == {"ok": True, "woken": [2]}
        smtp_sink.wait_for(1, timeout=10)
        received_at = time.time()
        assert received_at - due < 10
        assert stack.wait_all_status(1, "sent", timeout=10)[0]["deferred_ts"] == int(due)
    finally:
        stack.stop()


def test_starttls_with_a_private_ca_and_login_on_the_real_stack(tmp_path, postgres_url, broker_url):
    from tests.support.smtp_sink import SMTPSink
    from tests.support.stack import Stack

    sink = SMTPSink(tls=True, require_starttls=True, users={"mailer": "pw-1"}, auth_required=True)
    sink.start()
    stack = Stack(tmp_path, postgres_url, broker_url, smtp_ca_file=sink.cafile)
    try:
        key = stack.setup_tenant(
            sink.port, account={"use_tls": None, "user": "mailer", "password": "pw-1"}
        )
        stack.start_worker("w1")
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(3)})
        received = sink.wait_for(3, timeout=30)
        assert all(r.tls and r.login == "mailer" for r in received)
        stack.wait_all_status(3, "sent", timeout=10)
    finally:
        stack.stop()
        sink.stop()
