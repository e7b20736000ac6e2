"""/ready: 200 when the database and the broker answer and a worker takes tasks while
messages are due; 503 naming what does not."""

from __future__ import annotations

import time

import pytest

from mailproxy_api import create_app
from mailproxy_models.settings import Settings
from tests.support.servers import free_port
from tests.support.stack import ADMIN_TOKEN, Stack, make_messages, wait_until


def test_ready_when_database_and_embedded_broker_answer(tmp_path, sqlite_url):
    stack = Stack(tmp_path, sqlite_url, None)
    try:
        answer = stack.client.get("/ready")
        assert answer.status_code == 200, answer.json
        assert answer.json == {
            "ok": True,
            "checks": {"database": "ok", "broker": "ok", "worker": "ok"},
        }
    finally:
        stack.stop()


def test_ready_when_postgres_and_redis_answer(tmp_path, postgres_url, redis_server):
    stack = Stack(tmp_path, postgres_url, redis_server)
    try:
        answer = stack.client.get("/ready")
        assert answer.status_code == 200, answer.json
        assert answer.json["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}
    finally:
        stack.stop()


def test_not_ready_names_the_broker_when_it_refuses(tmp_path, sqlite_url):
    stack = Stack(tmp_path, sqlite_url, f"redis://127.0.0.1:{free_port()}/0")
    try:
        started = time.monotonic()
        answer = stack.client.get("/ready")
        assert time.monotonic() - started < 3
        assert answer.status_code == 503
        assert answer.json["ok"] is False and "broker" in answer.json["error"]
        assert answer.json["checks"]["database"] == "ok"
        assert answer.json["checks"]["broker"] != "ok"
    finally:
        stack.stop()


def test_not_ready_names_the_database_when_it_is_unreachable(tmp_path):
    closed = f"postgresql+psycopg2://mailproxy@127.0.0.1:{free_port()}/mailproxy"
    settings = Settings(data_dir=tmp_path, database_url=closed, admin_token=ADMIN_TOKEN)
    app = create_app(settings)
    try:
        started = time.monotonic()
        answer = app.test_client().get("/ready")
        assert time.monotonic() - started < 3
        assert answer.status_code == 503
        assert answer.json["ok"] is False and "database" in answer.json["error"]
        assert answer.json["checks"]["database"] != "ok"
        assert answer.json["checks"]["broker"] == "ok"
        # The process itself is alive: liveness does not depend on the database.
        assert app.test_client().get("/health").status_code == 200
    finally:
        app.extensions["mailproxy"].engine.dispose()


def _ready(stack: Stack) -> tuple[int, dict]:
    answer = stack.client.get("/ready")
    return answer.status_code, answer.json


@pytest.mark.parametrize("backend", ["sqlite", "postgres+redis"])
def test_not_ready_names_the_stale_worker_while_a_message_is_due_then_ready_when_one_runs(
    tmp_path, backend, request, smtp_sink
):
    if backend == "sqlite":
        stack = Stack(
            tmp_path, request.getfixturevalue("sqlite_url"), None, ready_worker_stale_seconds=3
        )
    else:
        stack = Stack(
            tmp_path,
            request.getfixturevalue("postgres_url"),
            request.getfixturevalue("redis_server"),
            ready_worker_stale_seconds=3,
        )
    try:
        key = stack.setup_tenant(smtp_sink.port)
        first = stack.start_worker("first-worker", beat=True)
        delivered = stack.call("POST", "/commands/add-messages", token=key,
                               json={"messages": make_messages(1, prefix="FIRST")})  # fmt: skip
        assert delivered.json["queued"] == 1
        smtp_sink.wait_for(1, timeout=30)
        stack.wait_all_status(1, "sent", timeout=30)
        wait_until(lambda: _ready(stack)[0] == 200, timeout=20)
        stack.kill_worker(first)
        time.sleep(4)  # past the stale limit, but nothing is due: the queue is not stuck
        status, body = _ready(stack)
        assert status == 200, body
        assert body["checks"]["worker"] == "ok"

        posted = stack.call(
            "POST", "/commands/add-messages", token=key, json={"messages": make_messages(1)}
        )
        assert posted.json["queued"] == 1
        status, body = _ready(stack)
        assert status == 503, body
        assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "ok"
        assert "first-worker@" in body["checks"]["worker"], body
        assert "no worker has taken a task" in body["error"]

        stack.start_worker("second-worker", beat=True)
        wait_until(lambda: _ready(stack)[0] == 200, timeout=30)
        smtp_sink.wait_for(2, timeout=30)
    finally:
        stack.stop()


def test_not_ready_when_a_message_is_due_and_no_worker_ever_ran(tmp_path, sqlite_url, smtp_sink):
    stack = Stack(tmp_path, sqlite_url, None, ready_worker_stale_seconds=3)
    try:
        key = stack.setup_tenant(smtp_sink.port)
        assert _ready(stack)[0] == 200  # nothing due yet
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(1)})
        status, body = _ready(stack)
        assert status == 503
        assert body["checks"]["worker"] == "messages are due and no worker has ever taken a task"
    finally:
        stack.stop()
