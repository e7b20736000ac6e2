"""Faults survived with 2,000 messages in flight on PostgreSQL + Redis + 2 workers (the
broker restart on RabbitMQ too): every message ends `sent`, each arrives at the sink (once,
but for a killed worker's in-flight batch), none is `sent` without a 250, and the API keeps
answering."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from mailproxy_models.wakeups import MAINTENANCE_QUEUE, QUEUE_BY_PRIORITY
from tests.e2e.checks import mailproxy_ids
from tests.support.servers import RabbitMQProcess, RedisProcess, purge_amqp_queues
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages, wait_until

TOTAL = 2000
FAST = {"sweep_interval": 1.0, "lease_seconds": 8, "retry_schedule": [1, 2, 4, 8, 8, 8, 8, 8]}


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[SMTPSink]:
    server = SMTPSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(tmp_path, postgres_url, own_redis) -> Iterator[Stack]:
    built = Stack(tmp_path, postgres_url, own_redis.url, **FAST)
    yield built
    built.stop()


class ApiProbe:
    """Calls /status every 50 ms during the fault and keeps what it got."""

    def __init__(self, stack: Stack, token: str) -> None:
        self.stack, self.token, self.answers = stack, token, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = self.stack.call("GET", "/status", token=self.token)
            self.answers.append((answer.status_code, answer.json))
            time.sleep(0.05)

    def __enter__(self) -> ApiProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _start(stack: Stack, sink: SMTPSink) -> str:
    key = stack.setup_tenant(sink.port)
    stack.start_worker("w1", concurrency=2, beat=True)
    stack.start_worker("w2", concurrency=2)
    for offset in range(0, TOTAL, 1000):
        answer = stack.call(
            "POST",
            "/commands/add-messages",
            token=key,
            json={"messages": make_messages(1000, prefix=f"F{offset}", cc=[])},
        )
        assert answer.json["queued"] == 1000
    return key


def _all_delivered(stack: Stack, *sinks: SMTPSink, allow_duplicates: int = 0) -> None:
    records = stack.wait_all_status(TOTAL, "sent", timeout=240)
    counts = mailproxy_ids([m for sink in sinks for m in sink.messages])
    assert set(counts) == {r["id"] for r in records}
    assert sum(c - 1 for c in counts.values()) <= allow_duplicates, Counter(counts.values())
    with stack.app.extensions["mailproxy"].engine.connect() as conn:
        without_250 = conn.execute(
            sa.text(
                "SELECT count(*) FROM messages m WHERE m.status = 'sent' AND NOT EXISTS ("
                "SELECT 1 FROM message_events e WHERE e.message_pk = m.pk AND e.kind = 'sent' "
                "AND e.smtp_code = 250)"
            )
        ).scalar_one()
    assert without_250 == 0


@pytest.fixture(params=["redis", "amqp"])
def restartable_broker(request) -> Iterator[RedisProcess | RabbitMQProcess]:
    """A broker the test may stop and start: Redis of the test's own, or the session's
    RabbitMQ node (a node takes seconds to start; the test leaves it running)."""
    if request.param == "redis":
        server = RedisProcess().start()
        yield server
        server.stop()
        return
    node = request.getfixturevalue("rabbitmq_node")
    purge_amqp_queues(node.url, [*QUEUE_BY_PRIORITY.values(), MAINTENANCE_QUEUE])
    yield node
    if node.proc is None or node.proc.poll() is not None:
        node.start()  # the test failed while it was stopped


def test_broker_restarted_mid_run(tmp_path, postgres_url, restartable_broker, sink):
    stack = Stack(tmp_path, postgres_url, restartable_broker.url, **FAST)
    try:
        key = _start(stack, sink)
        wait_until(lambda: len(sink.messages) >= 300, timeout=60, interval=0.02)
        with ApiProbe(stack, key) as probe:
            restartable_broker.stop()
            time.sleep(3)
            restartable_broker.start()  # Redis comes back empty: every wake-up it held is gone
        assert probe.answers and all(status == 200 for status, _ in probe.answers)
        _all_delivered(stack, sink)
        # Both workers reconnected: none exited and left the work to the other.
        assert [w.poll() for w in stack.workers] == [None, None]
    finally:
        stack.stop()


def test_database_connections_terminated_mid_run(stack, sink, postgres_admin):
    key = _start(stack, sink)
    wait_until(lambda: len(sink.messages) >= 300, timeout=60, interval=0.02)
    database = sa.engine.make_url(stack.settings.database_url).database
    admin = sa.create_engine(postgres_admin, isolation_level="AUTOCOMMIT")
    with ApiProbe(stack, key) as probe, admin.connect() as conn:
        for _ in range(3):
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).scalar_one()
            assert killed > 0
            time.sleep(1)
    admin.dispose()
    # The database was never down, only its connections: the API reconnected each time.
    bad = [(status, body) for status, body in probe.answers if status != 200]
    assert len(bad) <= 3 and all(
        status == 503 and "database" in body["error"] for status, body in bad
    )
    _all_delivered(stack, sink)


def test_smtp_server_stopped_for_a_while(stack):
    first = SMTPSink().start()
    _start(stack, first)
    wait_until(lambda: len(first.messages) >= 300, timeout=60, interval=0.02)
    first.stop()
    time.sleep(6)  # several retry steps fail: refused connections, never "sent"
    with stack.app.extensions["mailproxy"].engine.connect() as conn:
        deferred = conn.execute(
            sa.text("SELECT count(*) FROM messages WHERE status = 'deferred'")
        ).scalar_one()
    assert deferred > 0
    restarted = SMTPSink(port=first.port).start()  # the same port again
    try:
        _all_delivered(stack, first, restarted)
    finally:
        restarted.stop()


def test_worker_killed_mid_run(stack, sink):
    _start(stack, sink)
    wait_until(lambda: len(sink.messages) >= 300, timeout=60, interval=0.02)
    stack.kill_worker(stack.workers[1])
    _all_delivered(stack, sink, allow_duplicates=stack.settings.delivery_batch_size)
