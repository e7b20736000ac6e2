"""POST /commands/retry-messages: what goes back to pending, what is refused, and why."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailproxy_models.db import session_scope
from mailproxy_models.lifecycle import AttemptOutcome, record_attempts
from mailproxy_models.messages import Message
from tests.support.stack import make_messages


@pytest.fixture(params=["sqlite"])
def database_url(request) -> str:
    """SQLite here; the tests that change a status run on PostgreSQL too (parametrized)."""
    return request.getfixturevalue(f"{request.param}_url")


BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


def _queue(stack, key, count: int = 1, prefix: str = "MSG") -> None:
    answer = stack.call(
        "POST", "/commands/add-messages", token=key, json={"messages": make_messages(count, prefix)}
    )
    assert answer.json["queued"] == count


def _attempt(stack, msg_id: str, outcome: AttemptOutcome) -> None:
    """One delivery attempt's outcome, recorded the way a worker records it."""
    sessions = stack.app.extensions["mailproxy"].sessions
    with session_scope(sessions) as session:
        pk = session.scalar(select(Message.pk).where(Message.id == msg_id))
        record_attempts(session, {pk: outcome}, "test-worker", [60])


def _retry(stack, key, ids, **body):
    return stack.call("POST", "/commands/retry-messages", token=key, json={"ids": ids, **body})


def _message(stack, key, msg_id):
    return stack.call("GET", f"/message/{msg_id}", token=key).json["message"]


REFUSED = AttemptOutcome("permanent", "550 5.1.1 no such user", smtp_code=550)
BUSY = AttemptOutcome("temporary", "451 try later", smtp_code=451)


@BOTH_DATABASES
def test_an_errored_message_goes_back_to_pending_due_now_with_attempts_reset(stack, tenant_key):
    _queue(stack, tenant_key)
    _attempt(stack, "MSG-00000", REFUSED)
    assert _message(stack, tenant_key, "MSG-00000")["status"] == "error"

    answer = _retry(stack, tenant_key, ["MSG-00000"])
    assert answer.status_code == 200
    assert answer.json == {"ok": True, "retried": 1, "not_found": [], "not_retryable": []}
    message = _message(stack, tenant_key, "MSG-00000")
    assert message["status"] == "pending" and message["attempts"] == 0
    assert message["error"] is None and message["error_ts"] is None
    last = message["events"][-1]
    assert last["kind"] == "deferred" and last["description"] == "retry requested by tenant:acme"


@BOTH_DATABASES
def test_a_deferred_message_is_retried_now_instead_of_at_its_backoff(stack, tenant_key):
    _queue(stack, tenant_key)
    _attempt(stack, "MSG-00000", BUSY)
    assert _message(stack, tenant_key, "MSG-00000")["deferred_ts"] is not None
    assert _retry(stack, tenant_key, ["MSG-00000"]).json["retried"] == 1
    message = _message(stack, tenant_key, "MSG-00000")
    assert message["status"] == "pending" and message["deferred_ts"] is None


def test_sent_and_pending_messages_are_not_retried_and_say_why(stack, tenant_key):
    _queue(stack, tenant_key, 2)
    _attempt(stack, "MSG-00000", AttemptOutcome("sent", "accepted", smtp_code=250))
    answer = _retry(stack, tenant_key, ["MSG-00000", "MSG-00001", "nope"]).json
    assert answer["retried"] == 0 and answer["not_found"] == ["nope"]
    reasons = {entry["id"]: entry["reason"] for entry in answer["not_retryable"]}
    assert "sending again would deliver it twice" in reasons["MSG-00000"]
    assert "already pending" in reasons["MSG-00001"]
    assert _message(stack, tenant_key, "MSG-00000")["status"] == "sent"


def test_a_tenant_cannot_retry_another_tenants_message(stack, tenant_key):
    other_key = stack.setup_tenant(2525, tenant_id="globex")
    _queue(stack, other_key, prefix="THEIRS")
    _attempt(stack, "THEIRS-00000", REFUSED)
    answer = _retry(stack, tenant_key, ["THEIRS-00000"]).json
    assert answer == {"ok": True, "retried": 0, "not_found": ["THEIRS-00000"], "not_retryable": []}
    assert _message(stack, other_key, "THEIRS-00000")["status"] == "error"
    naming_it = _retry(stack, tenant_key, ["THEIRS-00000"], tenant_id="globex")
    assert naming_it.status_code == 404


def test_the_admin_retries_a_tenants_message_by_naming_the_tenant(stack, tenant_key):
    _queue(stack, tenant_key)
    _attempt(stack, "MSG-00000", REFUSED)
    answer = stack.call(
        "POST", "/commands/retry-messages", json={"ids": ["MSG-00000"], "tenant_id": "acme"}
    )
    assert answer.json["retried"] == 1
    assert _message(stack, tenant_key, "MSG-00000")["events"][-1]["description"] == (
        "retry requested by admin"
    )


def test_an_empty_id_list_is_a_validation_error(stack, tenant_key):
    assert _retry(stack, tenant_key, []).status_code in (400, 422)
