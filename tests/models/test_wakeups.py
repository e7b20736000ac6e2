"""Wake-ups on a real Redis broker: one queue per priority, bursts folded together."""

from __future__ import annotations

import redis

from mailproxy_models.settings import Settings
from mailproxy_models.wakeups import (
    QUEUE_BY_PRIORITY,
    WakeupPublisher,
    make_celery_app,
    wake_delivery,
)


def _queue_lengths(url: str) -> dict[int, int]:
    client = redis.Redis.from_url(url)
    return {p: client.llen(queue) for p, queue in QUEUE_BY_PRIORITY.items()}


def test_each_priority_is_published_to_its_own_queue(redis_server, tmp_path):
    redis.Redis.from_url(redis_server).flushdb()
    app = make_celery_app(Settings(data_dir=tmp_path, broker_url=redis_server))
    assert wake_delivery(app, [3, 0, 0]) == 2
    assert _queue_lengths(redis_server) == {0: 1, 1: 0, 2: 0, 3: 1}


def test_publisher_folds_a_burst_into_few_wakeups_and_loses_none(redis_server, tmp_path):
    redis.Redis.from_url(redis_server).flushdb()
    publisher = WakeupPublisher(
        make_celery_app(Settings(data_dir=tmp_path, broker_url=redis_server))
    )
    for _ in range(200):
        publisher.request([2])
    publisher.request([1])
    assert publisher.flush(timeout=10)
    lengths = _queue_lengths(redis_server)
    assert 1 <= lengths[2] < 200 and lengths[1] == 1


def test_unreachable_broker_never_fails_the_caller(tmp_path):
    app = make_celery_app(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:9/0"))
    assert wake_delivery(app, [2]) == 0
