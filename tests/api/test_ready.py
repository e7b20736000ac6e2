"""/ready: 200 when the database and the broker answer, 503 naming the one that does not."""

from __future__ import annotations

import time

from mailproxy_api import create_app
from mailproxy_models.settings import Settings
from tests.support.servers import free_port
from tests.support.stack import ADMIN_TOKEN, Stack


def test_ready_when_database_and_embedded_broker_answer(tmp_path, sqlite_url):
    stack = Stack(tmp_path, sqlite_url, None)
    try:
        answer = stack.client.get("/ready")
        assert answer.status_code == 200, answer.json
        assert answer.json == {"ok": True, "checks": {"database": "ok", "broker": "ok"}}
    finally:
        stack.stop()


def test_ready_when_postgres_and_redis_answer(tmp_path, postgres_url, redis_server):
    stack = Stack(tmp_path, postgres_url, redis_server)
    try:
        answer = stack.client.get("/ready")
        assert answer.status_code == 200, answer.json
        assert answer.json["checks"] == {"database": "ok", "broker": "ok"}
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
