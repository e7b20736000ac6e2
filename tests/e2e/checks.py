"""Assertions shared by the end-to-end tests: what arrived at the sink is what was posted."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.support.smtp_sink import Received


def mailproxy_ids(received: list[Received]) -> Counter[str]:
    return Counter(r.message()["X-Mailproxy-ID"] for r in received)


def assert_delivered_as_posted(posted: list[dict[str, Any]], received: list[Received]) -> None:
    """Each posted message arrived once, with its headers, body and envelope."""
    by_id = {r.message()["X-Mailproxy-ID"]: r for r in received}
    assert len(by_id) == len(posted) == len(received)
    for message in posted:
        got = by_id[message["id"]]
        mime = got.message()
        assert mime["From"] == message["from"]
        assert mime["To"] == ", ".join(message["to"])
        assert mime["Cc"] == ", ".join(message["cc"])
        assert "Bcc" not in mime
        assert mime["Subject"] == message["subject"]
        assert mime["X-Genro-Mail-ID"] == message["id"]
        for name, value in message["headers"].items():
            assert mime[name] == value
        assert mime.get_content().strip() == message["body"]
        assert got.mail_from == "shop@example.com"
        assert sorted(got.rcpt_tos) == sorted(
            message["to"] + message["cc"] + message.get("bcc", [])
        )


def assert_all_sent_with_250(stack: Any, records: list[dict[str, Any]]) -> None:
    """Every message is sent, and its history holds the server's 250 to DATA."""
    assert {r["status"] for r in records} == {"sent"}
    assert all(r["sent_ts"] for r in records)
    for record in records:
        answer = stack.call(
            "GET", f"/message/{record['id']}", query_string={"tenant_id": record["tenant_id"]}
        )
        events = answer.json["message"]["events"]
        sent = [e for e in events if e["kind"] == "sent"]
        assert sent and all(e["smtp_code"] == 250 for e in sent), events
