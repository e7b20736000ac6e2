"""Turns an RFC 5322 file (.eml) into one message of the add-messages payload."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage
from typing import Any

from mailproxy_models.message_validation import RESERVED_HEADERS

# Headers the payload carries in its own fields or the composer writes, and trace or
# signature headers of an earlier trip that would be false on this one.
OWN_HEADERS = RESERVED_HEADERS | {
    "content-disposition",
    "received",
    "dkim-signature",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "authentication-results",
}


class InvalidEml(ValueError):
    """The file is not a message that can be sent: the message says what is missing."""


def payload_from_eml(data: bytes, msg_id: str) -> dict[str, Any]:
    """One add-messages entry: addresses, subject, the text body (html when there is no
    text part), attachments inline as base64, other headers in ``headers``, and the file's
    Message-ID kept. Raises InvalidEml without a From or any recipient."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    sender = str(parsed.get("From", "")).strip()
    if not sender:
        raise InvalidEml("no From header")
    to, cc, bcc = (_addresses(parsed, name) for name in ("To", "Cc", "Bcc"))
    if not (to or cc or bcc):
        raise InvalidEml("no recipient in To, Cc or Bcc")
    payload: dict[str, Any] = {
        "id": msg_id,
        "from": sender,
        # add-messages wants at least one To; a Bcc-only file keeps its envelope that way.
        "to": to or cc or bcc,
        "subject": str(parsed.get("Subject", "")),
    }
    if to:
        payload.update({k: v for k, v in (("cc", cc), ("bcc", bcc)) if v})
    for field, header in (("reply_to", "Reply-To"), ("return_path", "Return-Path")):
        if parsed.get(header):
            payload[field] = str(parsed[header]).strip()
    if parsed.get("Message-ID"):
        payload["message_id"] = str(parsed["Message-ID"]).strip()
    payload["body"], payload["content_type"] = _body(parsed)
    headers = {
        name: str(value) for name, value in parsed.items() if name.lower() not in OWN_HEADERS
    }
    if headers:
        payload["headers"] = headers
    attachments = [_attachment(part) for part in parsed.iter_attachments()]
    if attachments:
        payload["attachments"] = attachments
    return payload


def _addresses(parsed: EmailMessage, header: str) -> list[str]:
    """One entry per mailbox, written back with its name quoted where it needs to be (a
    name such as ``Smith, John`` stays one mailbox); groups are opened into their members."""
    return [
        str(address)
        for value in parsed.get_all(header, [])
        for address in getattr(value, "addresses", ())
        if address.addr_spec
    ]


def _body(parsed: EmailMessage) -> tuple[str, str]:
    part = parsed.get_body(preferencelist=("plain", "html"))
    if part is None:
        return "", "plain"
    content = part.get_content()
    return (content if isinstance(content, str) else content.decode(errors="replace")), (
        "html" if part.get_content_subtype() == "html" else "plain"
    )


def _attachment(part: EmailMessage) -> dict[str, Any]:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):  # a message/rfc822 part: send it as the file it was
        data = part.as_bytes()
    return {
        "filename": part.get_filename() or "attachment.bin",
        "storage_path": "base64:" + base64.b64encode(data).decode(),
        "fetch_mode": "base64",
        "mime_type": part.get_content_type(),
    }
