"""A recipient refused for good while the message is sent gets the reason and the
suppression decision a bounce with the same words would get, against a real SMTP server,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailproxy_workers.tasks import deliver_batch
from tests.support.in_process_delivery import InProcessDelivery

PRIORITY = 2


@pytest.fixture
def delivery(tmp_path, database_url) -> Iterator[InProcessDelivery]:
    built = InProcessDelivery(tmp_path, database_url, retry_schedule=[60])
    yield built
    built.close()


def _suppressed(delivery: InProcessDelivery, key: str) -> dict[str, dict]:
    listed = delivery.stack.call("GET", "/suppressions", token=key).json["suppressions"]
    return {entry["address"]: entry for entry in listed}


def test_unknown_user_at_rcpt_is_suppressed_and_a_full_mailbox_is_not(delivery, smtp_sink):
    smtp_sink.rcpt_rules["gone@example.org"] = "550 5.1.1 <gone@example.org>: User unknown"
    smtp_sink.rcpt_rules["full@example.org"] = "552 5.2.2 Mailbox full, over quota"
    key = delivery.stack.setup_tenant(smtp_sink.port)
    delivery.add(
        key,
        [
            {
                "id": "m1",
                "from": "shop@example.com",
                "to": ["ok@example.org", "gone@example.org", "full@example.org"],
                "subject": "Order",
                "body": "Hello",
            }
        ],
    )
    deliver_batch(delivery.celery, delivery.runtime("w1"), PRIORITY)

    message = delivery.message(key, "m1")
    assert message["status"] == "sent"
    outcomes = {r["address"]: r for r in message["recipients"]}
    assert outcomes["gone@example.org"]["status"] == "refused"
    assert outcomes["gone@example.org"]["reason"] == "user_unknown"
    assert outcomes["gone@example.org"]["bounce_type"] == "hard"
    assert outcomes["full@example.org"]["reason"] == "mailbox_full"
    assert outcomes["full@example.org"]["bounce_type"] == "soft"
    assert "reason" not in outcomes["ok@example.org"]

    suppressed = _suppressed(delivery, key)
    # The unknown user is suppressed like a hard DSN would make it; the full mailbox, the
    # accepted recipient and the sender are not.
    assert set(suppressed) == {"gone@example.org"}
    assert suppressed["gone@example.org"]["message_id"] == "m1"
    again = delivery.stack.call(
        "POST",
        "/commands/add-messages",
        token=key,
        json={
            "messages": [
                {
                    "id": "m2",
                    "from": "shop@example.com",
                    "to": ["gone@example.org"],
                    "subject": "Again",
                    "body": "Hello",
                }
            ]
        },
    ).json
    assert again["queued"] == 0 and "suppression list" in again["rejected"][0]["reason"]


def test_a_refusal_at_data_is_classified_by_its_words(delivery, smtp_sink):
    smtp_sink.data_rules["spam@example.org"] = "554 5.7.1 Message rejected as spam"
    key = delivery.stack.setup_tenant(smtp_sink.port)
    delivery.add(
        key,
        [
            {
                "id": "m1",
                "from": "shop@example.com",
                "to": ["spam@example.org"],
                "subject": "Order",
                "body": "Hello",
            }
        ],
    )
    deliver_batch(delivery.celery, delivery.runtime("w1"), PRIORITY)

    message = delivery.message(key, "m1")
    assert message["status"] == "error"
    (outcome,) = message["recipients"]
    assert outcome["reason"] == "spam_detected"
    assert outcome["bounce_type"] == "soft"
    # Content rejections never suppress the address.
    assert _suppressed(delivery, key) == {}
