"""Stacks for end-to-end tests: PostgreSQL + Redis with real worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.client_app import ClientApp
from tests.support.stack import Stack


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The suite's Redis, emptied for this test."""
    redis.Redis.from_url(redis_server).flushdb()
    return redis_server


@pytest.fixture
def pg_stack(tmp_path, postgres_url: str, redis_url: str) -> Iterator[Stack]:
    stack = Stack(tmp_path, postgres_url, redis_url)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client_app() -> Iterator[ClientApp]:
    """A client application on loopback that receives delivery reports."""
    app = ClientApp().start()
    try:
        yield app
    finally:
        app.stop()
