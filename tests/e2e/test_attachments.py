"""Attachments end to end: accepted by the API as references, fetched by a real worker when
the message is sent, and their failures recorded as the message's events."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest

from tests.support.http_files import FileServer, Route
from tests.support.stack import Stack, wait_until


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stack(tmp_path, postgres_url, redis_url) -> Iterator[Stack]:
    root = tmp_path / "attachments"
    (root / "acme").mkdir(parents=True)
    stack = Stack(
        tmp_path,
        postgres_url,
        redis_url,
        attachment_root=root,
        attachment_private_url_tenants=["acme"],  # the test servers are on loopback
    )
    try:
        yield stack
    finally:
        stack.stop()


def _message(msg_id: str, attachments: list[dict], **fields) -> dict:
    return {
        "id": msg_id,
        "from": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "subject": "Documents",
        "body": "Attached.",
        "attachments": attachments,
        **fields,
    }


def _events(stack: Stack, msg_id: str) -> list[dict]:
    answer = stack.call("GET", f"/message/{msg_id}", query_string={"tenant_id": "acme"})
    return answer.json["message"]["events"]


def _final(stack: Stack, msg_id: str) -> dict:
    def done():
        record = stack.call("GET", f"/message/{msg_id}", query_string={"tenant_id": "acme"})
        message = record.json["message"]
        return message if message["status"] in ("sent", "error") else None

    return wait_until(done, timeout=60, interval=0.2)


def test_four_sources_are_fetched_by_the_worker_not_by_the_api(stack, smtp_sink, file_server):
    key = stack.setup_tenant(smtp_sink.port)
    stack.call(
        "PUT",
        "/tenant/acme",
        json={
            "client_base_url": file_server.url(""),
            "client_attachment_path": "/attachments",
            "client_auth": {"method": "bearer", "token": "app-token"},
        },
    )
    (stack.settings.attachment_root / "acme" / "terms.pdf").write_bytes(b"%PDF terms")
    file_server.routes["/logo.png"] = Route(body=b"\x89PNG logo")
    file_server.endpoint_files["invoice-7"] = b"%PDF invoice"
    file_server.endpoint_authorization = "Bearer app-token"
    attachments = [
        {"filename": "a.txt", "storage_path": "base64:" + base64.b64encode(b"inline").decode()},
        {
            "filename": "terms.pdf",
            "storage_path": str(stack.settings.attachment_root / "acme" / "terms.pdf"),
        },
        {"filename": "logo.png", "storage_path": file_server.url("/logo.png")},
        {"filename": "invoice.pdf", "storage_path": "invoice-7"},
    ]
    html = '<p>Hello <img src="cid:logo.png"></p>'
    answer = stack.call(
        "POST",
        "/commands/add-messages",
        token=key,
        json={"messages": [_message("docs-1", attachments, body=html, content_type="html")]},
    )
    assert answer.json == {"ok": True, "queued": 1, "rejected": []}
    assert file_server.requests == []  # nothing fetched while answering the API call
    stack.start_worker("w1")
    [received] = smtp_sink.wait_for(1, timeout=60)
    mime = received.message()
    files = {p.get_filename(): p.get_payload(decode=True) for p in mime.walk() if p.get_filename()}
    assert files == {
        "a.txt": b"inline",
        "terms.pdf": b"%PDF terms",
        "logo.png": b"\x89PNG logo",
        "invoice.pdf": b"%PDF invoice",
    }
    logo = next(p for p in mime.walk() if p.get_filename() == "logo.png")
    assert logo["Content-ID"] == "<logo.png>"
    assert _final(stack, "docs-1")["status"] == "sent"


def test_fetch_failures_become_events_permanent_or_retried(stack, smtp_sink, file_server):
    key = stack.setup_tenant(smtp_sink.port)
    file_server.routes["/busy.pdf"] = Route(status=503)
    messages = [
        _message("gone", [{"filename": "x.pdf", "storage_path": file_server.url("/nope.pdf")}]),
        _message("busy", [{"filename": "y.pdf", "storage_path": file_server.url("/busy.pdf")}]),
        _message(
            "escape",
            [{"filename": "p", "storage_path": "../../etc/passwd", "fetch_mode": "filesystem"}],
        ),
        _message(
            "md5",
            [
                {
                    "filename": "z.pdf",
                    "storage_path": file_server.url("/changed.pdf"),
                    "content_md5": hashlib.md5(b"what the client had").hexdigest(),
                }
            ],
        ),
    ]
    file_server.routes["/changed.pdf"] = Route(body=b"changed since")
    stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})
    stack.start_worker("w1")
    gone = _final(stack, "gone")
    assert gone["status"] == "error" and "answered 404" in gone["error"]
    assert "attachment 'x.pdf'" in gone["error"]
    escape = _final(stack, "escape")
    assert escape["status"] == "error" and "outside the tenant's root" in escape["error"]
    md5 = _final(stack, "md5")
    assert md5["status"] == "error" and "does not match its declared MD5" in md5["error"]
    busy = wait_until(lambda: _events(stack, "busy"), timeout=30)
    assert busy[0]["kind"] == "deferred" and "answered 503" in busy[0]["description"]
    assert busy[0]["details"]["attachment"] == "y.pdf"
    assert "answered 503" in busy[0]["details"]["reason"]
    assert smtp_sink.messages == []


def test_private_addresses_are_refused_for_a_tenant_not_allowed_them(
    tmp_path, postgres_url, redis_url, smtp_sink, file_server
):
    stack = Stack(tmp_path, postgres_url, redis_url, private_networks_allowed=[])
    try:
        key = stack.setup_tenant(smtp_sink.port)
        file_server.routes["/a.pdf"] = Route(body=b"internal")
        message = _message(
            "ssrf", [{"filename": "a.pdf", "storage_path": file_server.url("/a.pdf")}]
        )
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": [message]})
        stack.start_worker("w1")
        record = _final(stack, "ssrf")
        assert record["status"] == "error"
        assert "refused to connect to 127.0.0.1" in record["error"]
        assert file_server.requests == [] and smtp_sink.messages == []
    finally:
        stack.stop()


@pytest.mark.parametrize("action", ["warn", "reject"])
def test_large_file_warn_sends_with_an_event_and_reject_fails_with_the_reason(
    stack, smtp_sink, action
):
    key = stack.setup_tenant(smtp_sink.port)
    config = {"enabled": True, "max_size_mb": 0.001, "action": action}
    assert stack.call("PUT", "/tenant/acme", json={"large_file_config": config}).status_code == 200
    content = base64.b64encode(b"x" * 5000).decode()
    message = _message("big", [{"filename": "big.bin", "storage_path": "base64:" + content}])
    stack.call("POST", "/commands/add-messages", token=key, json={"messages": [message]})
    stack.start_worker("w1")
    record = _final(stack, "big")
    if action == "warn":
        assert record["status"] == "sent"
        [event] = _events(stack, "big")
        assert (
            "over the tenant's large-file threshold of 1048 bytes: sent as is"
            in (event["description"])
        )
        assert len(event["details"]["attachment_warnings"]) == 1
        assert len(smtp_sink.messages) == 1
    else:
        assert record["status"] == "error"
        assert "5000 bytes, over the tenant's large-file threshold" in record["error"]
        assert "rejects large files" in record["error"]
        assert smtp_sink.messages == []


def test_api_accepts_references_and_checks_only_their_shape(stack, smtp_sink):
    key = stack.setup_tenant(smtp_sink.port)
    cases = {
        "ok-url": {"filename": "a.pdf", "storage_path": "https://files.example.com/a.pdf"},
        "ok-path": {"filename": "a.pdf", "storage_path": "/reports/a.pdf"},
        "ok-endpoint": {"filename": "a{MD5:" + "A" * 32 + "}.pdf", "storage_path": "doc-1"},
        "bad-md5": {"filename": "a.pdf", "storage_path": "doc-1", "content_md5": "xyz"},
        "bad-url": {"filename": "a.pdf", "storage_path": "ftp://x", "fetch_mode": "http_url"},
        "bad-auth": {"filename": "a.pdf", "storage_path": "doc", "auth": {"method": "magic"}},
    }
    messages = [_message(msg_id, [attachment]) for msg_id, attachment in cases.items()]
    answer = stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})
    assert answer.json["queued"] == 3
    reasons = {r["id"]: r["reason"] for r in answer.json["rejected"]}
    assert set(reasons) == {"bad-md5", "bad-url", "bad-auth"}
    assert "content_md5" in reasons["bad-md5"] and "http(s) URL" in reasons["bad-url"]
    assert "auth" in reasons["bad-auth"]
