"""GET /inbound-mail: the log of mail read from a tenant's mailboxes, newest first, by
pages, filtered, with the client's id of the message each was about; never another
tenant's. On SQLite and PostgreSQL."""

from __future__ import annotations

from mailproxy_models.db import now, session_scope
from mailproxy_models.inbound import Correlation, InboundEvent, InboundFacts, record_inbound_mail
from tests.support.stack import make_messages


def _bounce(message_id: str) -> InboundFacts:
    event = InboundEvent(
        kind="bounce",
        description="550 5.1.1 user unknown",
        recipients=("user0@example.org",),
        smtp_code=550,
        enhanced_status="5.1.1",
        details={"bounce_type": "hard"},
        hard_bounce=True,
    )
    return InboundFacts("bounce", "From: MAILER-DAEMON", Correlation(ids=(message_id,)), (event,))


def _read(stack, tenant: str, key: str, facts: InboundFacts, account: str = "main") -> None:
    with session_scope(stack.app.extensions["mailproxy"].sessions) as session:
        record_inbound_mail(session, tenant, account, key, facts, now())


def test_the_log_lists_what_each_mail_became_newest_first(stack, tenant_key):
    messages = make_messages(1, cc=[], to=["user0@example.org"])
    stack.call("POST", "/commands/add-messages", token=tenant_key, json={"messages": messages})
    _read(stack, "acme", "a" * 64, _bounce("MSG-00000"))
    _read(stack, "acme", "b" * 64, _bounce("NO-SUCH-MESSAGE"))
    _read(stack, "acme", "c" * 64, InboundFacts("auto_reply", "Subject: Out of office"))
    _read(stack, "acme", "a" * 64, _bounce("MSG-00000"))  # read twice: listed once

    answer = stack.call("GET", "/inbound-mail", token=tenant_key)
    assert answer.status_code == 200, answer.json
    log = answer.json["inbound_mail"]
    assert [(e["kind"], e["outcome"], e["message_id"]) for e in log] == [
        ("auto_reply", "ignored", None),
        ("bounce", "uncorrelated", None),
        ("bounce", "recorded", "MSG-00000"),
    ]
    assert log[0]["summary"] == "Subject: Out of office" and log[0]["account_id"] == "main"
    assert log[2]["mail_sha256"] == "a" * 64 and abs(log[2]["received_at"] - now()) < 60
    assert answer.json["next_cursor"] is None

    only = stack.call("GET", "/inbound-mail?outcome=uncorrelated", token=tenant_key).json
    assert [e["outcome"] for e in only["inbound_mail"]] == ["uncorrelated"]
    bounces = stack.call("GET", "/inbound-mail?kind=bounce&account_id=main", token=tenant_key)
    assert len(bounces.json["inbound_mail"]) == 2
    other = stack.call("GET", "/inbound-mail?account_id=other", token=tenant_key).json
    assert other["inbound_mail"] == []

    first = stack.call("GET", "/inbound-mail?limit=2", token=tenant_key).json
    assert first["inbound_mail"] == log[:2] and first["next_cursor"]
    rest = stack.call(
        "GET", f"/inbound-mail?limit=2&cursor={first['next_cursor']}", token=tenant_key
    ).json
    assert rest["inbound_mail"] == log[2:] and rest["next_cursor"] is None
    exact = stack.call("GET", "/inbound-mail?limit=3", token=tenant_key).json
    assert exact["inbound_mail"] == log and exact["next_cursor"] is None


def test_bad_filters_are_refused_with_a_reason(stack, tenant_key):
    answer = stack.call("GET", "/inbound-mail?outcome=lost", token=tenant_key)
    assert answer.status_code == 400 and answer.json["ok"] is False
    assert "outcome" in str(answer.json)
    assert stack.call("GET", "/inbound-mail?limit=0", token=tenant_key).status_code == 400
    forged = stack.call("GET", "/inbound-mail?cursor=not-ours", token=tenant_key)
    assert forged.status_code == 400 and "cursor" in forged.json["error"]


def test_a_tenant_sees_only_its_own_mail(stack, tenant_key):
    beta = stack.setup_tenant(2526, tenant_id="beta")
    _read(stack, "acme", "a" * 64, InboundFacts("not_recognised", "Subject: acme's secret"))
    assert stack.call("GET", "/inbound-mail", token=beta).json["inbound_mail"] == []
    foreign = stack.call("GET", "/inbound-mail?tenant_id=acme", token=beta)
    assert foreign.status_code in (403, 404)
    # The admin names the tenant.
    admin = stack.call("GET", "/inbound-mail?tenant_id=acme").json["inbound_mail"]
    assert [e["summary"] for e in admin] == ["Subject: acme's secret"]
    missing = stack.call("GET", "/inbound-mail")
    assert missing.status_code == 403 and "tenant_id" in missing.json["error"]
