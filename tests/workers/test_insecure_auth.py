"""Credentials go only over TLS: a server without STARTTLS gets no AUTH unless the account
allows it (allow_insecure_auth), and the messages wait on an account-level outcome."""

from __future__ import annotations

import pytest

from mailproxy_models.claims import ClaimedMessage
from mailproxy_workers.delivery import deliver_messages, deliver_one
from mailproxy_workers.smtp_pool import SmtpConnectionPool
from tests.support.smtp_sink import SMTPSink
from tests.workers.conftest import loopback_endpoint


def _message(pk: int = 1) -> ClaimedMessage:
    payload = {
        "id": f"m{pk}",
        "from": "shop@example.com",
        "to": ["a@example.org"],
        "subject": "Hello",
        "body": "Body",
    }
    return ClaimedMessage(pk, "acme", "main", f"m{pk}", payload, "token")


@pytest.fixture
def plain_sink_with_auth():
    """Offers AUTH PLAIN/LOGIN in clear, and no STARTTLS."""
    sink = SMTPSink(users={"mailer": "secret-pw"})
    sink.start()
    yield sink
    sink.stop()


@pytest.mark.parametrize("use_tls", [None, False], ids=["starttls-if-offered", "plain"])
def test_no_auth_reaches_a_server_without_tls_and_the_batch_waits(plain_sink_with_auth, use_tls):
    sink = plain_sink_with_auth
    pool = SmtpConnectionPool(timeout=5)
    endpoint = loopback_endpoint(sink.port, use_tls=use_tls, user="mailer", password="secret-pw")
    try:
        outcomes = [o for _m, o in deliver_messages(pool, endpoint, [_message(1), _message(2)])]
    finally:
        pool.close_all()
    assert [o.kind for o in outcomes] == ["account", "account"]  # no retry spent
    reason = outcomes[0].description
    assert "not encrypted" in reason and "allow_insecure_auth" in reason
    assert sink.authenticator.attempts == []  # the server never saw an AUTH command
    assert sink.messages == []


def test_an_account_that_allows_it_logs_in_without_tls(plain_sink_with_auth):
    sink = plain_sink_with_auth
    pool = SmtpConnectionPool(timeout=5)
    endpoint = loopback_endpoint(
        sink.port, user="mailer", password="secret-pw", allow_insecure_auth=True
    )
    try:
        assert deliver_one(pool, endpoint, _message()).kind == "sent"
    finally:
        pool.close_all()
    assert [login for _mechanism, login in sink.authenticator.attempts] == ["mailer"]
    assert sink.wait_for(1)[0].login == "mailer"


def test_credentials_go_over_starttls_when_the_server_offers_it():
    sink = SMTPSink(tls=True, users={"mailer": "secret-pw"}, auth_required=True)
    sink.start()
    pool = SmtpConnectionPool(timeout=5, ca_file=sink.cafile)
    try:
        endpoint = loopback_endpoint(sink.port, use_tls=None, user="mailer", password="secret-pw")
        assert deliver_one(pool, endpoint, _message()).kind == "sent"
        received = sink.wait_for(1)[0]
        assert received.tls and received.login == "mailer"
    finally:
        pool.close_all()
        sink.stop()
