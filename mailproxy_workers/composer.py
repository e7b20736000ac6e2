"""Turns a stored message payload into the envelope and the bytes that go on the wire.

The modern ``EmailMessage`` API re-parses every header through its header registry, which
cost about 2 ms per message here and capped delivery throughput. So header fields are
written directly (non-ASCII text RFC 2047-encoded with ``email.header``, long lines folded),
a plain message's body too, and the standard library's ``compat32`` MIME classes build
multipart messages with attachments. Messages whose addresses need SMTPUTF8 (non-ASCII
local parts) go through ``EmailMessage`` with the SMTPUTF8 policy.
"""

from __future__ import annotations

import base64
import mimetypes
import quopri
from dataclasses import dataclass
from email import policy
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from functools import lru_cache
from typing import Any

CORRELATION_HEADERS = ("X-Mailproxy-ID", "X-Genro-Mail-ID")
# A batch repeats its sender: parse each distinct "Name <addr>" once per process.
_parseaddr = lru_cache(maxsize=4096)(parseaddr)


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipients: list[str]
    data: bytes
    message_id: str
    smtputf8: bool


def compose(payload: dict[str, Any]) -> Envelope:
    """Build the MIME message; raises ValueError if a header cannot be written safely."""
    recipients = _unique_addresses(payload["to"] + payload.get("cc", []) + payload.get("bcc", []))
    mail_from = _parseaddr(payload.get("return_path") or payload["from"])[1]
    sender_domain = _parseaddr(payload["from"])[1].rpartition("@")[2] or None
    message_id = payload.get("message_id") or make_msgid(domain=sender_domain)
    smtputf8 = not all(address.isascii() for address in [mail_from, *recipients])
    headers = _headers(payload, message_id)
    for name, value in headers:
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"header {name} contains a line break")
    if smtputf8:
        data = _compose_utf8(payload, headers)
    else:
        data = _compose_ascii(payload, headers)
    return Envelope(mail_from, recipients, data, message_id, smtputf8)


def _headers(payload: dict[str, Any], message_id: str) -> list[tuple[str, str]]:
    headers = [("From", payload["from"])]
    if payload["to"]:
        headers.append(("To", ", ".join(payload["to"])))
    if payload.get("cc"):
        headers.append(("Cc", ", ".join(payload["cc"])))
    if payload.get("reply_to"):
        headers.append(("Reply-To", payload["reply_to"]))
    headers += [
        ("Subject", payload["subject"]),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id),
    ]
    headers += [(name, payload["id"]) for name in CORRELATION_HEADERS]
    headers += list((payload.get("headers") or {}).items())
    return headers


ADDRESS_HEADERS = frozenset({"From", "To", "Cc", "Reply-To"})
WIRE = policy.compat32.clone(linesep="\r\n")


def _header_line(name: str, value: str) -> str:
    """One header field, RFC 2047-encoded when not ASCII, folded to 78 columns where it can."""
    if not value.isascii():
        if name in ADDRESS_HEADERS:  # encode display names only, never the addresses
            pairs = getaddresses([value])
            value = ", ".join(formataddr(pair, charset="utf-8") for pair in pairs)
        else:
            return f"{name}: " + Header(value, "utf-8", header_name=name).encode("\r\n") + "\r\n"
    return _fold(f"{name}: {value}") + "\r\n"


def _fold(line: str, limit: int = 78) -> str:
    """Fold an ASCII header line at spaces (RFC 5322 2.2.3); a word longer than the limit
    stays whole, as the RFC allows up to 998 characters."""
    if len(line) <= limit:
        return line
    folded, current = [], ""
    for word in line.split(" "):
        if current and len(current) + 1 + len(word) > limit:
            folded.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    folded.append(current)
    return "\r\n".join(folded)


def _compose_ascii(payload: dict[str, Any], headers: list[tuple[str, str]]) -> bytes:
    # The top-level fields are written here rather than by the email generator, which builds
    # a Header object to fold each one (most of the cost of composing a small message).
    top = "".join(_header_line(name, value) for name, value in headers)
    subtype, encoding, text = _text_body(payload)
    attachments = payload.get("attachments") or []
    if not attachments:
        body_headers = (
            f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
        )
        return (top + body_headers + _crlf(text)).encode("ascii")
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = encoding
    part.set_payload(text)
    msg = MIMEMultipart("mixed")
    msg.attach(part)
    for attachment in attachments:
        msg.attach(_attachment_part(attachment))
    return top.encode("ascii") + msg.as_bytes(policy=WIRE)


def _text_body(payload: dict[str, Any]) -> tuple[str, str, str]:
    """(subtype, transfer encoding, encoded text) of the body: 7bit when it can be."""
    subtype = "html" if payload.get("content_type") == "html" else "plain"
    text = payload.get("body") or ""
    if text.isascii() and all(len(line) <= 998 for line in text.splitlines()):
        return subtype, "7bit", text
    return subtype, "quoted-printable", quopri.encodestring(text.encode("utf-8")).decode("ascii")


def _crlf(text: str) -> str:
    """Body lines end in CRLF on the wire, whatever the client sent."""
    return "\r\n".join(text.splitlines()) + "\r\n"


def _attachment_part(attachment: dict[str, Any]) -> Message:
    maintype, _, subtype = _mime_type(attachment).partition("/")
    part = MIMEBase(maintype, subtype)
    part.set_payload(attachment["storage_path"])  # already base64, as stored
    part["Content-Transfer-Encoding"] = "base64"
    filename = attachment["filename"]
    if filename.isascii():
        part.add_header("Content-Disposition", "attachment", filename=filename)
    else:  # RFC 2231
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))
    return part


def _mime_type(attachment: dict[str, Any]) -> str:
    return str(
        attachment.get("mime_type")
        or mimetypes.guess_type(attachment["filename"])[0]
        or "application/octet-stream"
    )


def _compose_utf8(payload: dict[str, Any], headers: list[tuple[str, str]]) -> bytes:
    msg = EmailMessage(policy=policy.SMTPUTF8)
    for name, value in headers:
        msg[name] = value
    subtype = "html" if payload.get("content_type") == "html" else "plain"
    msg.set_content(payload.get("body") or "", subtype=subtype)
    for attachment in payload.get("attachments") or []:
        maintype, _, subtype = _mime_type(attachment).partition("/")
        content = base64.b64decode(attachment["storage_path"])
        msg.add_attachment(
            content, maintype=maintype, subtype=subtype, filename=attachment["filename"]
        )
    return msg.as_bytes()


def _unique_addresses(items: list[str]) -> list[str]:
    """Envelope recipients in order, each once (compared case-insensitively)."""
    unique: dict[str, str] = {}
    for item in items:
        # Validation stored bare addresses as they are: only "Name <addr>" needs parsing.
        pairs = getaddresses([item]) if ("<" in item or "," in item) else [("", item)]
        for _name, address in pairs:
            if address:
                unique.setdefault(address.lower(), address)
    return list(unique.values())
