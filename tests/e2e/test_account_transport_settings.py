"""Account transport settings through the API: allow_insecure_auth is stored, shown and
audited; a new account's ttl defaults to MAILPROXY_SMTP_POOL_TTL."""

from __future__ import annotations

import os

import pytest

from mailproxy_models.instance import open_instance
from mailproxy_workers.runtime import WorkerRuntime, attachment_fetcher
from mailproxy_workers.smtp_pool import SmtpConnectionPool
from mailproxy_workers.tasks import deliver_batch
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages


@pytest.fixture
def stack(tmp_path, sqlite_url):
    stack = Stack(tmp_path, sqlite_url, None, smtp_pool_ttl=42)
    yield stack
    stack.stop()


def _account(stack: Stack, key: str, account_id: str) -> dict:
    answer = stack.call("GET", f"/account/{account_id}", token=key)
    assert answer.status_code == 200, answer.json
    return answer.json["account"]


def test_allow_insecure_auth_is_off_by_default_shown_and_audited_when_set(stack):
    key = stack.setup_tenant(2525)
    assert _account(stack, key, "main")["allow_insecure_auth"] is False
    body = {"id": "main", "allow_insecure_auth": True}
    answer = stack.call("POST", "/account", token=key, json=body)
    assert answer.status_code == 200, answer.json
    assert answer.json["account"]["allow_insecure_auth"] is True
    assert _account(stack, key, "main")["allow_insecure_auth"] is True
    entries = stack.call("GET", "/audit-log", token=key).json["entries"]
    [opt_in] = [e for e in entries if (e["details"] or {}).get("allow_insecure_auth")]
    assert opt_in["action"] == "account.upsert" and opt_in["target_id"] == "main"


def test_a_new_account_gets_the_instance_pool_ttl_unless_it_gives_one(stack):
    key = stack.setup_tenant(2525)
    assert _account(stack, key, "main")["ttl"] == 42
    body = {"id": "own", "host": "127.0.0.1", "port": 2525, "ttl": 7}
    assert stack.call("POST", "/account", token=key, json=body).status_code == 200
    assert _account(stack, key, "own")["ttl"] == 7
    # An update without ttl keeps the account's own value.
    assert stack.call("POST", "/account", token=key, json={"id": "own"}).status_code == 200
    assert _account(stack, key, "own")["ttl"] == 7


def test_an_account_without_tls_holds_its_messages_and_shows_why(stack, tmp_path):
    """The whole path: the API's account, a worker batch, the recorded outcome."""
    sink = SMTPSink(users={"mailer": "secret-pw"})  # AUTH offered in clear, no STARTTLS
    sink.start()
    runtime = WorkerRuntime(
        open_instance(stack.settings),
        SmtpConnectionPool(timeout=5),
        "test",
        os.getpid(),
        attachment_fetcher(stack.settings),
    )
    try:
        account = {"user": "mailer", "password": "secret-pw", "use_tls": None}
        key = stack.setup_tenant(sink.port, account=account)
        messages = make_messages(2, cc=[])
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})
        assert deliver_batch(None, runtime, 2) == 2  # type: ignore[arg-type]
    finally:
        runtime.pool.close_all()
        runtime.instance.engine.dispose()
        sink.stop()
    assert sink.authenticator.attempts == [] and sink.messages == []
    shown = _account(stack, key, "main")
    assert shown["failing_since"] and "not encrypted" in shown["failing_reason"]
    records = stack.all_messages()
    assert {m["status"] for m in records} == {"deferred"}
    assert {m["attempts"] for m in records} == {0}  # no retry spent
