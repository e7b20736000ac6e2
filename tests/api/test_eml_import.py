"""An .eml file becomes one add-messages entry (used by `mail-proxy send`)."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest

from mailproxy_api.eml_import import InvalidEml, payload_from_eml
from mailproxy_models.message_validation import MessageLimits, normalize_message


def _eml(**headers: str) -> EmailMessage:
    message = EmailMessage()
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    return message


def test_addresses_subject_headers_and_message_id_are_kept():
    message = _eml(
        From="Shop <shop@example.com>",
        To="Alice <alice@example.org>, bob@example.org",
        Cc="carol@example.org",
        Subject="Hello",
        Message_ID="<m1@example.com>",
        X_Campaign="nov",
        Received="from relay by mx",
    )
    message.set_content("Hi.")
    payload = payload_from_eml(bytes(message), "m1")
    assert payload["id"] == "m1" and payload["from"] == "Shop <shop@example.com>"
    assert payload["to"] == ["Alice <alice@example.org>", "bob@example.org"]
    assert payload["cc"] == ["carol@example.org"] and payload["subject"] == "Hello"
    assert payload["message_id"] == "<m1@example.com>"
    assert payload["headers"] == {"X-Campaign": "nov"}  # trace headers of the old trip dropped
    assert payload["body"].strip() == "Hi." and payload["content_type"] == "plain"


def test_html_only_body_is_sent_as_html_and_attachments_as_base64():
    message = _eml(From="a@example.com", To="b@example.org", Subject="s")
    message.set_content("<p>Hi</p>", subtype="html")
    message.add_attachment(b"\x00\x01pdf", maintype="application", subtype="pdf", filename="a.pdf")
    payload = payload_from_eml(bytes(message), "m2")
    assert payload["content_type"] == "html" and "<p>Hi</p>" in payload["body"]
    [attachment] = payload["attachments"]
    assert attachment["filename"] == "a.pdf" and attachment["mime_type"] == "application/pdf"
    assert base64.b64decode(attachment["storage_path"].removeprefix("base64:")) == b"\x00\x01pdf"


def test_a_file_without_sender_or_recipient_is_refused_with_the_reason():
    with pytest.raises(InvalidEml, match="From"):
        payload_from_eml(bytes(_eml(To="b@example.org", Subject="s")), "x")
    with pytest.raises(InvalidEml, match="recipient"):
        payload_from_eml(bytes(_eml(From="a@example.com", Subject="s")), "x")


def test_a_name_holding_a_comma_stays_one_mailbox_when_the_file_is_queued():
    message = _eml(
        From='"Shop, Inc." <shop@example.com>',
        To='"Smith, John" <john@example.org>, "evil@example.net, x" <legit@example.org>',
        Subject="Hello",
    )
    message.set_content("Hi.")
    payload = payload_from_eml(bytes(message), "m1")
    stored = normalize_message(payload, MessageLimits(500, 50), 2)
    assert stored["from"] == {"name": "Shop, Inc.", "address": "shop@example.com"}
    assert stored["to"] == [
        {"name": "Smith, John", "address": "john@example.org"},
        {"name": "evil@example.net, x", "address": "legit@example.org"},
    ]
