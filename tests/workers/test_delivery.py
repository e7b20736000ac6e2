"""One SMTP transaction against a real server on loopback, classified by what it answered."""

from __future__ import annotations

import pytest

from mailproxy_models.claims import ClaimedMessage
from mailproxy_workers.delivery import deliver_one
from mailproxy_workers.smtp_pool import SmtpConnectionPool
from tests.support.servers import free_port
from tests.support.smtp_sink import SMTPSink
from tests.workers.conftest import loopback_endpoint


def _message(to: list[str], msg_id: str = "m1") -> ClaimedMessage:
    payload = {
        "id": msg_id,
        "from": "Shop <shop@example.com>",
        "to": to,
        "cc": [],
        "bcc": [],
        "subject": "Hello",
        "body": "Body",
        "content_type": "plain",
        "headers": {},
        "attachments": [],
    }
    return ClaimedMessage(1, "t", "a", msg_id, payload, "token")


@pytest.fixture
def pool():
    pool = SmtpConnectionPool(timeout=5)
    yield pool
    pool.close_all()


def test_sent_only_with_the_250_and_its_text_kept(smtp_sink, pool):
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), _message(["a@example.org"]))
    assert outcome.kind == "sent"
    assert outcome.smtp_code == 250 and outcome.smtp_text == "OK: queued"
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["a@example.org"]


def test_connection_is_reused_across_messages(smtp_sink, pool):
    endpoint = loopback_endpoint(smtp_sink.port)
    for i in range(3):
        assert deliver_one(pool, endpoint, _message(["a@example.org"], f"m{i}")).kind == "sent"
    peers = {r.peer for r in smtp_sink.wait_for(3)}
    assert len(peers) == 1


def test_connection_older_than_its_ttl_is_replaced(smtp_sink, pool):
    endpoint = loopback_endpoint(smtp_sink.port, ttl=0)
    for i in range(2):
        deliver_one(pool, endpoint, _message(["a@example.org"], f"m{i}"))
    assert len({r.peer for r in smtp_sink.wait_for(2)}) == 2


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("450 4.2.1 Mailbox busy", "temporary"),
        ("451 4.7.1 Greylisted", "temporary"),
        ("452 4.2.2 Mailbox full", "temporary"),
        ("550 5.1.1 No such user", "permanent"),
        ("553 5.1.3 Bad address", "permanent"),
    ],
)
def test_refused_recipient_is_classified_by_its_code(smtp_sink, pool, reply, kind):
    smtp_sink.rcpt_rules["x@example.org"] = reply
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), _message(["x@example.org"]))
    assert outcome.kind == kind
    assert outcome.smtp_code == int(reply[:3])
    assert outcome.enhanced_status == reply.split()[1]
    assert smtp_sink.messages == []


def test_421_drops_the_connection_and_is_temporary(smtp_sink, pool):
    smtp_sink.rcpt_rules["busy@example.org"] = "421 4.3.2 Service not available"
    endpoint = loopback_endpoint(smtp_sink.port)
    assert deliver_one(pool, endpoint, _message(["busy@example.org"])).kind == "temporary"
    # The next message opens a fresh connection and goes through.
    assert deliver_one(pool, endpoint, _message(["ok@example.org"], "m2")).kind == "sent"


def test_one_refused_recipient_among_several_is_reported_and_the_others_get_it(smtp_sink, pool):
    smtp_sink.rcpt_rules["gone@example.org"] = "550 5.1.1 No such user"
    outcome = deliver_one(
        pool, loopback_endpoint(smtp_sink.port), _message(["ok@example.org", "gone@example.org"])
    )
    assert outcome.kind == "sent"
    assert outcome.details["refused_recipients"] == {
        "gone@example.org": {"code": 550, "text": "5.1.1 No such user"}
    }
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["ok@example.org"]


def test_refusal_at_end_of_data_is_not_sent(smtp_sink, pool):
    smtp_sink.data_rules["spam@example.org"] = "554 5.7.1 Rejected as spam"
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), _message(["spam@example.org"]))
    assert outcome.kind == "permanent" and outcome.smtp_code == 554
    assert "DATA" in outcome.description


def test_refused_connection_is_temporary(pool):
    outcome = deliver_one(pool, loopback_endpoint(free_port()), _message(["a@example.org"]))
    assert outcome.kind == "temporary" and outcome.smtp_code is None


def test_login_and_starttls_with_verified_certificate():
    sink = SMTPSink(tls=True, require_starttls=True, users={"u1": "p1"}, auth_required=True)
    sink.start()
    pool = SmtpConnectionPool(timeout=5, ca_file=sink.cafile)
    try:
        endpoint = loopback_endpoint(sink.port, use_tls=None, user="u1", password="p1")
        assert deliver_one(pool, endpoint, _message(["a@example.org"])).kind == "sent"
        received = sink.wait_for(1)[0]
        assert received.tls and received.login == "u1"
    finally:
        pool.close_all()
        sink.stop()


def test_untrusted_certificate_is_refused_not_ignored():
    sink = SMTPSink(tls=True, require_starttls=True)
    sink.start()
    pool = SmtpConnectionPool(timeout=5)  # the sink's self-signed CA is not trusted
    try:
        outcome = deliver_one(
            pool, loopback_endpoint(sink.port, use_tls=None), _message(["a@example.org"])
        )
        assert outcome.kind == "temporary" and "CERTIFICATE_VERIFY_FAILED" in outcome.description
        assert sink.messages == []
    finally:
        pool.close_all()
        sink.stop()


def test_wrong_password_is_reported_as_an_authentication_failure():
    sink = SMTPSink(users={"u1": "p1"}, auth_required=True)
    sink.start()
    pool = SmtpConnectionPool(timeout=5)
    try:
        endpoint = loopback_endpoint(
            sink.port, user="u1", password="wrong", allow_insecure_auth=True
        )
        outcome = deliver_one(pool, endpoint, _message(["a@example.org"]))
        assert outcome.kind == "account" and "authentication failed" in outcome.description
        assert outcome.smtp_code == 535
    finally:
        pool.close_all()
        sink.stop()


def test_account_that_opted_out_of_verification_accepts_an_untrusted_certificate():
    sink = SMTPSink(tls=True, require_starttls=True)
    sink.start()
    pool = SmtpConnectionPool(timeout=5)
    try:
        endpoint = loopback_endpoint(sink.port, use_tls=None, tls_verify=False)
        assert deliver_one(pool, endpoint, _message(["a@example.org"])).kind == "sent"
        assert sink.wait_for(1)[0].tls
    finally:
        pool.close_all()
        sink.stop()


def test_after_a_refused_login_the_rest_of_the_batch_is_not_tried():
    from mailproxy_workers.delivery import deliver_messages

    sink = SMTPSink(users={"u1": "p1"}, auth_required=True)
    sink.start()
    pool = SmtpConnectionPool(timeout=5)
    try:
        endpoint = loopback_endpoint(
            sink.port, user="u1", password="wrong", allow_insecure_auth=True
        )
        batch = [_message(["a@example.org"], f"m{i}") for i in range(3)]
        outcomes = [o for _m, o in deliver_messages(pool, endpoint, batch)]
        assert [o.kind for o in outcomes] == ["account"] * 3
        logins = [a for a in sink.handler.attempts if a[0] == "MAIL"]
        assert logins == []  # never got as far as MAIL FROM
    finally:
        pool.close_all()
        sink.stop()


def test_a_session_carries_at_most_the_accounts_batch_size_then_ends(smtp_sink, pool):
    endpoint = loopback_endpoint(smtp_sink.port, batch_size=2)
    for i in range(5):
        assert deliver_one(pool, endpoint, _message(["a@example.org"], f"m{i}")).kind == "sent"
    per_session: dict[object, int] = {}
    for received in smtp_sink.wait_for(5):
        per_session[received.peer] = per_session.get(received.peer, 0) + 1
    assert sorted(per_session.values()) == [1, 2, 2]
