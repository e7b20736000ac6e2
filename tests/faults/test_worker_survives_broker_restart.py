"""A broker restart while a delivery is in flight: the SAME worker process reconnects and
delivers what is posted afterwards (no orchestrator has to restart it).

The worker runs two threads and one long task: the task's message is unacknowledged (acks
late) and, on Redis, the worker waits on a BRPOP for more. That is the state in which a worker
exited at a Redis restart instead of reconnecting ("Unrecoverable error: AttributeError:
'NoneType' object has no attribute 'hostname'").
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailproxy_models.wakeups import MAINTENANCE_QUEUE, QUEUE_BY_PRIORITY
from tests.e2e.checks import mailproxy_ids
from tests.support.servers import RabbitMQProcess, RedisProcess, purge_amqp_queues
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages, wait_until

IN_FLIGHT = 6
SECONDS_PER_MESSAGE = 0.5  # the sink holds each DATA this long: the task outlives the restart


@pytest.fixture(params=["redis", "amqp"])
def broker(request) -> Iterator[RedisProcess | RabbitMQProcess]:
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


@pytest.fixture
def slow_sink() -> Iterator[SMTPSink]:
    server = SMTPSink(on_message=lambda _received: time.sleep(SECONDS_PER_MESSAGE))
    server.start()
    yield server
    server.stop()


def test_same_worker_delivers_after_broker_restart(tmp_path, sqlite_url, broker, slow_sink):
    # No beat: only the worker that was running when the broker went away can deliver.
    stack = Stack(tmp_path, sqlite_url, broker.url, delivery_batch_size=IN_FLIGHT)
    try:
        key = stack.setup_tenant(slow_sink.port)
        worker = stack.start_worker("w1", concurrency=2)
        log = stack.logs / "w1.log"
        posted = stack.call(
            "POST",
            "/commands/add-messages",
            token=key,
            json={"messages": make_messages(IN_FLIGHT, prefix="BEFORE", cc=[])},
        )
        assert posted.json["queued"] == IN_FLIGHT
        slow_sink.wait_for(1, timeout=30)  # the delivery task is running, its message unacked

        broker.stop()
        broker.start()
        wait_until(
            lambda: worker.poll() is not None or log.read_text().count("Connected to") >= 2,
            timeout=60,
            interval=0.1,
        )
        assert worker.poll() is None, f"the worker exited:\n{log.read_text()[-4000:]}"

        posted = stack.call(
            "POST",
            "/commands/add-messages",
            token=key,
            json={"messages": make_messages(1, prefix="AFTER", cc=[])},
        )
        assert posted.json["queued"] == 1
        after_id = "AFTER-00000"

        def delivered_after() -> bool:
            return after_id in mailproxy_ids(slow_sink.messages)

        wait_until(lambda: worker.poll() is not None or delivered_after(), timeout=60)
        assert worker.poll() is None, f"the worker exited:\n{log.read_text()[-4000:]}"
        assert delivered_after()
        # The task in flight at the restart went on and delivered its batch, once each (the
        # other thread may have delivered AFTER while that batch was still going).
        wait_until(lambda: len(slow_sink.messages) >= IN_FLIGHT + 1, timeout=60)
        received = mailproxy_ids(slow_sink.messages)
        assert received == {f"BEFORE-{i:05d}": 1 for i in range(IN_FLIGHT)} | {after_id: 1}
        # Still the process that was started before the restart (no one restarted it).
        assert stack.workers == [worker]
    finally:
        stack.stop()
