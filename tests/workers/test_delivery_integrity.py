"""Delivery integrity against a real SMTP server, through the real API and the delivery task
run in this process, on SQLite and on PostgreSQL: a recipient refused for now is tried
again alone; one Message-ID for a message's whole life; a slow server outliving the lease
makes no duplicate; a tenant whose settings make preparation raise stops only its own
messages."""

from __future__ import annotations

import email
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from mailproxy_models.db import session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.reports import report_body
from mailproxy_models.tenants import Tenant
from mailproxy_workers.tasks import deliver_batch
from tests.support.in_process_delivery import InProcessDelivery
from tests.support.smtp_sink import Received, SMTPSink

PRIORITY = 2


@pytest.fixture
def delivery(tmp_path, database_url) -> Iterator[InProcessDelivery]:
    built = InProcessDelivery(tmp_path, database_url, retry_schedule=[60, 60, 60])
    yield built
    built.close()


def _mail(msg_id: str, to: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "id": msg_id,
        "from": "Shop <shop@example.com>",
        "to": to,
        "subject": "Your order",
        "body": "Hello",
        **fields,
    }


def _message_id(received: Received) -> str:
    return str(email.message_from_bytes(received.data)["Message-ID"])


def test_a_recipient_refused_for_now_is_tried_again_alone(delivery, smtp_sink):
    smtp_sink.rcpt_rules["later@example.org"] = ["451 4.7.1 Greylisted, try later", "250 OK"]
    key = delivery.stack.setup_tenant(smtp_sink.port)
    delivery.add(key, [_mail("m1", ["ok@example.org", "later@example.org"])])
    worker = delivery.runtime("w1")

    deliver_batch(delivery.celery, worker, PRIORITY)
    first = delivery.message(key, "m1")
    assert first["status"] == "deferred"  # not sent: one recipient still waits
    outcomes = {r["address"]: r for r in first["recipients"]}
    assert outcomes["ok@example.org"]["status"] == "accepted"
    assert outcomes["ok@example.org"]["smtp_code"] == 250
    assert outcomes["later@example.org"]["status"] == "deferred"
    assert outcomes["later@example.org"]["smtp_code"] == 451
    assert outcomes["later@example.org"]["enhanced_status"] == "4.7.1"

    delivery.make_due()
    deliver_batch(delivery.celery, worker, PRIORITY)
    received = smtp_sink.wait_for(2)
    # The accepted recipient got it once; the retry went to the other one only.
    assert [r.rcpt_tos for r in received] == [["ok@example.org"], ["later@example.org"]]
    assert len({_message_id(r) for r in received}) == 1

    done = delivery.message(key, "m1")
    assert done["status"] == "sent" and done["sent_ts"] is not None
    assert {r["address"]: r["status"] for r in done["recipients"]} == {
        "ok@example.org": "accepted",
        "later@example.org": "accepted",
    }
    assert done["smtp_message_id"] == _message_id(received[0])
    # Nothing more to send: another pass sends nothing.
    delivery.make_due()
    assert deliver_batch(delivery.celery, worker, PRIORITY) == 0
    assert len(smtp_sink.messages) == 2

    # Events and delivery reports say who got it at each attempt.
    with session_scope(delivery.instance.sessions) as session:
        events = list(session.scalars(select(MessageEvent).order_by(MessageEvent.pk)))
        reports = [report_body("m1", event) for event in events]
    assert [e.kind for e in events] == ["deferred", "sent"]
    assert "later@example.org" in (events[0].description or "")
    assert [(r["address"], r["status"]) for r in reports[0]["recipients"]] == [
        ("ok@example.org", "accepted"),
        ("later@example.org", "deferred"),
    ]
    assert [(r["address"], r["status"]) for r in reports[1]["recipients"]] == [
        ("later@example.org", "accepted")
    ]


def test_accepted_and_refused_for_good_reads_sent_with_the_refusal_shown(delivery, smtp_sink):
    smtp_sink.rcpt_rules["gone@example.org"] = "550 5.1.1 No such user"
    key = delivery.stack.setup_tenant(smtp_sink.port)
    delivery.add(key, [_mail("m1", ["ok@example.org", "gone@example.org"])])
    deliver_batch(delivery.celery, delivery.runtime("w1"), PRIORITY)
    record = delivery.message(key, "m1")
    assert record["status"] == "sent"
    outcomes = {r["address"]: (r["status"], r["smtp_code"]) for r in record["recipients"]}
    assert outcomes == {"ok@example.org": ("accepted", 250), "gone@example.org": ("refused", 550)}


def test_every_recipient_refused_for_good_reads_error(delivery, smtp_sink):
    smtp_sink.rcpt_rules["*"] = "550 5.1.1 No such user"
    key = delivery.stack.setup_tenant(smtp_sink.port)
    delivery.add(key, [_mail("m1", ["a@example.org", "b@example.org"])])
    deliver_batch(delivery.celery, delivery.runtime("w1"), PRIORITY)
    record = delivery.message(key, "m1")
    assert record["status"] == "error"
    assert {r["status"] for r in record["recipients"]} == {"refused"}


def test_retries_spent_with_one_recipient_accepted_read_sent(tmp_path, database_url, smtp_sink):
    delivery = InProcessDelivery(tmp_path, database_url, retry_schedule=[60])
    try:
        smtp_sink.rcpt_rules["later@example.org"] = "451 4.7.1 Greylisted"
        key = delivery.stack.setup_tenant(smtp_sink.port)
        delivery.add(key, [_mail("m1", ["ok@example.org", "later@example.org"])])
        worker = delivery.runtime("w1")
        deliver_batch(delivery.celery, worker, PRIORITY)
        delivery.make_due()
        deliver_batch(delivery.celery, worker, PRIORITY)
        record = delivery.message(key, "m1")
        assert record["status"] == "sent"
        later = next(r for r in record["recipients"] if r["address"] == "later@example.org")
        assert later["status"] == "refused" and "gave up after 2 attempts" in later["smtp_text"]
        assert [r.rcpt_tos for r in smtp_sink.messages] == [["ok@example.org"]]
    finally:
        delivery.close()


def test_one_message_id_on_every_attempt_and_shown_by_the_api(delivery, smtp_sink):
    # DATA refused for now, then accepted: two full copies reach the server.
    smtp_sink.data_rules["a@example.org"] = ["451 4.3.0 Try again", "250 OK"]
    key = delivery.stack.setup_tenant(smtp_sink.port)
    delivery.add(key, [_mail("m1", ["a@example.org"]), _mail("m2", ["b@example.org"])])
    given = "<order-7@shop.example.com>"
    delivery.add(key, [_mail("m3", ["c@example.org"], message_id=given)])
    stored = delivery.message(key, "m1")["smtp_message_id"]
    assert stored and stored.startswith("<") and stored.endswith("@example.com>")
    assert delivery.message(key, "m3")["smtp_message_id"] == given

    worker = delivery.runtime("w1")
    deliver_batch(delivery.celery, worker, PRIORITY)
    delivery.make_due()
    deliver_batch(delivery.celery, worker, PRIORITY)
    received = smtp_sink.wait_for(3)
    by_recipient = {r.rcpt_tos[0]: _message_id(r) for r in received}
    assert by_recipient["a@example.org"] == stored
    assert by_recipient["c@example.org"] == given
    assert delivery.message(key, "m1")["smtp_message_id"] == stored


def test_a_slow_server_outliving_the_lease_sends_each_message_once(tmp_path, database_url):
    count = 8
    sink = SMTPSink(data_delay=0.6).start()  # 8 messages: about 5 s, the lease is 2 s
    delivery = InProcessDelivery(tmp_path, database_url, lease_seconds=2, delivery_batch_size=count)
    try:
        key = delivery.stack.setup_tenant(sink.port)
        delivery.add(key, [_mail(f"m{i}", [f"u{i}@example.org"]) for i in range(count)])
        first = threading.Thread(
            target=deliver_batch, args=(delivery.celery, delivery.runtime("w1"), PRIORITY)
        )
        first.start()
        time.sleep(2.6)  # past the lease the first worker took
        second = delivery.runtime("w2")
        while first.is_alive():  # a second worker keeps asking for due messages meanwhile
            deliver_batch(delivery.celery, second, PRIORITY)
            time.sleep(0.2)
        first.join()
        deliver_batch(delivery.celery, second, PRIORITY)
        statuses = [delivery.message(key, f"m{i}")["status"] for i in range(count)]
        assert statuses == ["sent"] * count
        copies = Counter(_message_id(r) for r in sink.messages)
        assert len(copies) == count and set(copies.values()) == {1}, copies
        with session_scope(delivery.instance.sessions) as session:
            descriptions = session.scalars(select(MessageEvent.description)).all()
        assert not [d for d in descriptions if "already" in (d or "")]
    finally:
        delivery.close()
        sink.stop()


def test_a_tenant_whose_settings_make_preparing_raise_stops_only_its_message(delivery, smtp_sink):
    bad = delivery.stack.setup_tenant(smtp_sink.port, tenant_id="bad")
    good = delivery.stack.setup_tenant(smtp_sink.port, tenant_id="good")
    # Written directly: whatever the API accepts, a value stored earlier may be this one.
    with session_scope(delivery.instance.sessions) as session:
        session.execute(
            update(Tenant)
            .where(Tenant.id == "bad")
            .values(large_file_config={"enabled": True, "max_size_mb": "lots"})
        )
    attachment = {"filename": "a.txt", "storage_path": "base64:aGVsbG8="}
    delivery.add(bad, [_mail("b1", ["x@example.org"], attachments=[attachment])])
    delivery.add(good, [_mail("g1", ["y@example.org"], attachments=[attachment])])
    delivery.add(good, [_mail("g2", ["z@example.org"])])

    deliver_batch(delivery.celery, delivery.runtime("w1"), PRIORITY)

    received = smtp_sink.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["y@example.org", "z@example.org"]
    assert delivery.message(good, "g1")["status"] == "sent"
    record = delivery.message(bad, "b1")
    assert record["status"] == "deferred" and record["attempts"] == 1
    answer = delivery.stack.call(
        "GET", "/messages", token=bad, query_string={"include_history": "true"}
    )
    event = answer.json["messages"][0]["events"][-1]
    assert event["kind"] == "deferred"
    assert "large_file_config.max_size_mb" in event["description"]


def test_a_rate_limit_holds_while_another_worker_is_mid_batch(tmp_path, database_url):
    """A message recorded as sent counts in its account's window at once: a second worker
    claiming while the first is still in its batch finds no room beyond the limit."""
    sink = SMTPSink(data_delay=0.4).start()
    delivery = InProcessDelivery(tmp_path, database_url, delivery_batch_size=3)
    try:
        key = delivery.stack.setup_tenant(sink.port, account={"limit_per_minute": 3})
        delivery.add(key, [_mail(f"m{i}", [f"u{i}@example.org"]) for i in range(6)])
        first = threading.Thread(
            target=deliver_batch, args=(delivery.celery, delivery.runtime("w1"), PRIORITY)
        )
        first.start()
        sink.wait_for(2, timeout=20)  # the first worker has recorded at least one send
        second = delivery.runtime("w2")
        while first.is_alive():
            deliver_batch(delivery.celery, second, PRIORITY)
            time.sleep(0.1)
        first.join()
        deliver_batch(delivery.celery, second, PRIORITY)
        time.sleep(1.0)  # anything wrongly claimed would have reached the sink by now
        assert len(sink.messages) == 3
        statuses = Counter(delivery.message(key, f"m{i}")["status"] for i in range(6))
        assert statuses == {"sent": 3, "deferred": 3}
    finally:
        delivery.close()
        sink.stop()
