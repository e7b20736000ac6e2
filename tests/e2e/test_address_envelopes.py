"""Display names never become recipients: messages posted to the API, sent by a real worker
to an SMTP server on loopback, arrive with the RCPT TO list and the From header the client
meant, one mailbox per entry."""

from __future__ import annotations

from email import message_from_bytes, policy

from tests.support.smtp_sink import SMTPSink


def test_quoted_names_reach_the_header_and_only_addresses_the_envelope(pg_stack, smtp_sink):
    sink: SMTPSink = smtp_sink
    key = pg_stack.setup_tenant(sink.port)
    many = ", ".join(f"r{i}@example.net" for i in range(600))
    messages = [
        {
            "id": "smuggle",
            "from": '"Shop, Inc." <shop@example.com>',
            "to": ['"evil@example.net, x" <legit@example.org>'],
            "subject": "s",
        },
        {
            "id": "smith",
            "from": "shop@example.com",
            "to": ['"Smith, John" <john@example.org>'],
            "subject": "s",
        },
        {
            "id": "many",
            "from": "shop@example.com",
            "to": [f'"{many}" <legit@example.org>'],
            "subject": "s",
        },
        {
            "id": "two-from",
            "from": "a@example.com, b@example.com",
            "to": ["c@example.org"],
            "subject": "s",
        },
    ]
    answer = pg_stack.call(
        "POST", "/commands/add-messages", token=key, json={"messages": messages}
    ).json
    assert answer["queued"] == 3, answer
    assert [r["id"] for r in answer["rejected"]] == ["two-from"]
    assert answer["rejected"][0]["reason"].startswith("from:")
    pg_stack.start_worker("w1")
    received = {r.message()["X-Mailproxy-ID"]: r for r in sink.wait_for(3, timeout=60)}
    assert set(received) == {"smuggle", "smith", "many"}
    assert received["smuggle"].rcpt_tos == ["legit@example.org"]
    assert received["smith"].rcpt_tos == ["john@example.org"]
    assert received["many"].rcpt_tos == ["legit@example.org"]
    smuggle = message_from_bytes(received["smuggle"].data, policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in smuggle["From"].addresses] == [
        ("Shop, Inc.", "shop@example.com")
    ]
    assert [(a.display_name, a.addr_spec) for a in smuggle["To"].addresses] == [
        ("evil@example.net, x", "legit@example.org")
    ]
    smith = message_from_bytes(received["smith"].data, policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in smith["To"].addresses] == [
        ("Smith, John", "john@example.org")
    ]
    assert received["smuggle"].mail_from == "shop@example.com"
