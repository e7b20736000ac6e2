"""Turns a stored message payload into the envelope and the bytes that go on the wire."""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import Any

CORRELATION_HEADERS = ("X-Mailproxy-ID", "X-Genro-Mail-ID")


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipients: list[str]
    data: bytes
    message_id: str
    smtputf8: bool


def compose(payload: dict[str, Any]) -> Envelope:
    """Build the MIME message; raises ValueError if a header cannot be encoded safely."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = payload["from"]
    if payload["to"]:
        msg["To"] = ", ".join(payload["to"])
    if payload.get("cc"):
        msg["Cc"] = ", ".join(payload["cc"])
    if payload.get("reply_to"):
        msg["Reply-To"] = payload["reply_to"]
    msg["Subject"] = payload["subject"]
    msg["Date"] = formatdate(usegmt=True)
    sender_domain = parseaddr(payload["from"])[1].rpartition("@")[2] or None
    message_id = payload.get("message_id") or make_msgid(domain=sender_domain)
    msg["Message-ID"] = message_id
    for name in CORRELATION_HEADERS:
        msg[name] = payload["id"]
    for name, value in (payload.get("headers") or {}).items():
        msg[name] = value
    subtype = "html" if payload.get("content_type") == "html" else "plain"
    msg.set_content(payload.get("body") or "", subtype=subtype)
    for attachment in payload.get("attachments") or []:
        _attach(msg, attachment)
    recipients = _unique_addresses(payload["to"] + payload.get("cc", []) + payload.get("bcc", []))
    mail_from = parseaddr(payload.get("return_path") or payload["from"])[1]
    smtputf8 = not all(addr.isascii() for addr in [mail_from, *recipients])
    data = msg.as_bytes(policy=policy.SMTPUTF8 if smtputf8 else policy.SMTP)
    return Envelope(mail_from, recipients, data, message_id, smtputf8)


def _attach(msg: EmailMessage, attachment: dict[str, Any]) -> None:
    content = base64.b64decode(attachment["storage_path"])
    mime_type = attachment.get("mime_type") or (
        mimetypes.guess_type(attachment["filename"])[0] or "application/octet-stream"
    )
    maintype, _, subtype = mime_type.partition("/")
    msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=attachment["filename"])


def _unique_addresses(items: list[str]) -> list[str]:
    """Envelope recipients in order, each once (compared case-insensitively)."""
    unique: dict[str, str] = {}
    for _name, address in getaddresses(items):
        if address:
            unique.setdefault(address.lower(), address)
    return list(unique.values())
