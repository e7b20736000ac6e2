from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack


@pytest.fixture
def stack(tmp_path, database_url: str) -> Iterator[Stack]:
    """The API on SQLite and on PostgreSQL; wake-ups go to an embedded broker nobody reads."""
    stack = Stack(tmp_path, database_url, None)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def tenant_key(stack: Stack) -> str:
    return stack.setup_tenant(2525)
