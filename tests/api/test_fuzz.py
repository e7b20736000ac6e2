"""schemathesis over the whole OpenAPI document, with the admin token and a tenant token,
against the API on PostgreSQL with a Redis broker: no answer is a 5xx, and every answer
matches what the document says of it (status code, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks as openapi_checks

from tests.support.servers import fresh_postgres_database
from tests.support.stack import ADMIN_TOKEN, Stack, make_messages

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory, postgres_admin, redis_server) -> Iterator[Stack]:
    redis.Redis.from_url(redis_server).flushdb()
    with fresh_postgres_database(postgres_admin) as url:
        stack = Stack(tmp_path_factory.mktemp("fuzz"), url, redis_server)
        stack.tenant_key = stack.setup_tenant(2525)  # type: ignore[attr-defined]
        stack.call(
            "POST",
            "/commands/add-messages",
            token=stack.tenant_key,  # type: ignore[attr-defined]
            json={"messages": make_messages(3)},
        )
        try:
            yield stack
        finally:
            stack.stop()


def _fuzz_every_operation(stack: Stack, token: str) -> int:
    """Run hypothesis over each operation; returns how many operations were fuzzed."""
    api_schema = schemathesis.openapi.from_wsgi("/openapi.json", stack.app)
    fuzzed = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(headers={"X-API-Token": token}, checks=CHECKS)

        fuzz()
        fuzzed += 1
    return fuzzed


def test_admin_token_gets_no_server_error_and_documented_answers(fuzz_stack):
    assert _fuzz_every_operation(fuzz_stack, ADMIN_TOKEN) >= 20


def test_tenant_token_gets_no_server_error_and_documented_answers(fuzz_stack):
    assert _fuzz_every_operation(fuzz_stack, fuzz_stack.tenant_key) >= 20
