"""What goes on the wire: headers, encodings, attachments, envelope."""

from __future__ import annotations

import base64
import email
from email import policy

import pytest

from mailproxy_workers.composer import compose


def _payload(**fields):
    payload = {
        "id": "MSG-1",
        "from": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "cc": [],
        "bcc": [],
        "reply_to": None,
        "return_path": None,
        "subject": "Hello",
        "body": "Body",
        "content_type": "plain",
        "headers": {},
        "message_id": None,
        "attachments": [],
    }
    payload.update(fields)
    return payload


def _parse(data: bytes):
    # As a receiving MTA stores it: wire CRLF becomes the local line ending.
    return email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)


def test_headers_envelope_and_correlation_ids():
    env = compose(
        _payload(
            cc=["C <c@example.org>"],
            bcc=["hidden@example.org"],
            reply_to="help@example.com",
            headers={"X-Campaign": "nov"},
        )
    )
    msg = _parse(env.data)
    assert msg["From"] == "Shop <shop@example.com>" and msg["Cc"] == "C <c@example.org>"
    assert msg["Reply-To"] == "help@example.com" and msg["X-Campaign"] == "nov"
    assert msg["X-Mailproxy-ID"] == msg["X-Genro-Mail-ID"] == "MSG-1"
    assert "Bcc" not in msg and b"hidden@" not in env.data
    assert env.recipients == ["a@example.org", "c@example.org", "hidden@example.org"]
    assert env.mail_from == "shop@example.com"
    assert msg["Message-ID"] == env.message_id and env.message_id.endswith("@example.com>")
    assert b"\r\n" in env.data and b"\n" not in env.data.replace(b"\r\n", b"")


def test_non_ascii_subject_names_and_body_are_encoded_and_read_back():
    env = compose(
        _payload(
            **{
                "from": "Café Müller <shop@example.com>",
                "subject": "Bestellung ✓ — grüße",
                "body": "Grüße\nZeile 2 ✓",
            }
        )
    )
    assert env.data.isascii()
    msg = _parse(env.data)
    assert msg["Subject"] == "Bestellung ✓ — grüße"
    assert msg["From"].addresses[0].display_name == "Café Müller"
    assert msg.get_content().rstrip("\n") == "Grüße\nZeile 2 ✓"


def test_html_body_and_duplicate_recipients_once():
    env = compose(
        _payload(
            content_type="html",
            body="<p>Hi</p>",
            to=["a@example.org", "A@example.org"],
            cc=["a@example.org"],
        )
    )
    assert _parse(env.data).get_content_type() == "text/html"
    assert env.recipients == ["a@example.org"]


def test_return_path_sets_the_envelope_sender_and_message_id_is_kept():
    env = compose(_payload(return_path="bounces@example.com", message_id="<given@example.com>"))
    assert env.mail_from == "bounces@example.com" and env.message_id == "<given@example.com>"


def test_attachments_with_type_and_non_ascii_names():
    pdf = base64.b64encode(b"%PDF-1.4 test").decode()
    env = compose(
        _payload(
            attachments=[
                {"filename": "a.pdf", "storage_path": pdf, "mime_type": None},
                {
                    "filename": "résumé ✓.txt",
                    "storage_path": base64.b64encode(b"hi").decode(),
                    "mime_type": "text/plain",
                },
            ]
        )
    )
    parts = list(_parse(env.data).iter_attachments())
    assert [p.get_content_type() for p in parts] == ["application/pdf", "text/plain"]
    assert parts[0].get_content() == b"%PDF-1.4 test"
    assert parts[1].get_filename() == "résumé ✓.txt"


def test_internationalized_address_uses_smtputf8():
    env = compose(_payload(to=["用户@例子.广告"]))
    assert env.smtputf8 and env.recipients == ["用户@例子.广告"]
    assert "用户@例子.广告".encode() in env.data


@pytest.mark.parametrize("field", ["subject", "from"])
def test_line_break_in_a_header_is_refused_even_past_validation(field):
    with pytest.raises(ValueError):
        compose(_payload(**{field: "x\r\nBcc: victim@example.org"}))
