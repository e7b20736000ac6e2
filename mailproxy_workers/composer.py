"""Turns a stored message payload into the envelope and the bytes that go on the wire.

The modern ``EmailMessage`` API re-parses every header through its header registry, which
cost about 2 ms per message here and capped delivery throughput. So header fields are
written directly (non-ASCII text RFC 2047-encoded with ``email.header``, long lines folded),
a plain message's body too, and the standard library's ``compat32`` MIME classes build
multipart messages with attachments. Messages whose addresses need SMTPUTF8 (non-ASCII
local parts) are built the same way, their addresses written in UTF-8. Every line ends in
CRLF and is at most 998 octets: words too long for a line are RFC 2047 encoded words.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import quopri
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import (
    encode_rfc2231,
    formataddr,
    formatdate,
    make_msgid,
)
from typing import Any

from mailproxy_models.addresses import (
    Mailbox,
    envelope_recipients,
    envelope_sender,
    stored_mailbox,
    stored_mailboxes,
)

from .attachments import FetchedAttachment

CORRELATION_HEADERS = ("X-Mailproxy-ID", "X-Genro-Mail-ID")
ADDRESS_HEADERS = frozenset({"From", "To", "Cc", "Reply-To"})


@dataclass(frozen=True)
class DownloadLink:
    """An attachment replaced by a link (large-file offload)."""

    filename: str
    size: int
    url: str
    expires_at: float


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    recipients: list[str]
    data: bytes
    message_id: str
    smtputf8: bool
    # Set when attachments were fetched: the message as pieces written one after the
    # other (fetched content is base64-encoded while it is sent); ``data`` is then empty.
    segments: tuple[bytes | FetchedAttachment, ...] | None = None

    def iter_data(self) -> Iterator[bytes]:
        """The message in pieces, each ending at a line end."""
        if self.segments is None:
            yield self.data
            return
        for segment in self.segments:
            if isinstance(segment, bytes):
                yield segment
            else:
                yield from _base64_lines(segment)

    def as_bytes(self) -> bytes:
        return b"".join(self.iter_data())


def compose(
    payload: dict[str, Any],
    fetched: list[FetchedAttachment] | None = None,
    links: list[DownloadLink] | None = None,
) -> Envelope:
    """Build the MIME message; raises ValueError if a header cannot be written safely.

    Without ``fetched`` the attachments are the base64 ones stored in the payload. With it,
    they are the fetched ones (the payload's list is then ignored) and the message is built
    as segments, so that a large attachment is encoded while it is sent, never copied whole.
    """
    # Addresses come from the stored parts (either stored form), never from a header.
    recipients = envelope_recipients(payload)
    mail_from = envelope_sender(payload)
    sender_domain = stored_mailbox(payload["from"])["address"].rpartition("@")[2] or None
    message_id = payload.get("message_id") or make_msgid(domain=sender_domain)
    # An internationalized address anywhere (envelope or From/Reply-To) makes the message
    # SMTPUTF8 (RFC 6531): its header fields then carry UTF-8.
    header_addresses = [stored_mailbox(payload["from"])["address"]]
    if payload.get("reply_to"):
        header_addresses.append(stored_mailbox(payload["reply_to"])["address"])
    smtputf8 = not all(a.isascii() for a in [mail_from, *recipients, *header_addresses])
    headers = _headers(payload, message_id, smtputf8)
    for name, value in headers:
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"header {name} contains a line break")
    if fetched is not None or links:
        segments = _compose_segments(payload, headers, fetched or [], links or [])
        return Envelope(mail_from, recipients, b"", message_id, smtputf8, segments)
    if smtputf8:
        data = _compose_utf8(payload, headers)
    else:
        data = _compose_ascii(payload, headers)
    return Envelope(mail_from, recipients, data, message_id, smtputf8)


def _headers(payload: dict[str, Any], message_id: str, utf8: bool) -> list[tuple[str, str]]:
    headers = [("From", _mailbox_text(stored_mailbox(payload["from"]), utf8))]
    if payload["to"]:
        headers.append(("To", _mailbox_list_text(payload["to"], utf8)))
    if payload.get("cc"):
        headers.append(("Cc", _mailbox_list_text(payload["cc"], utf8)))
    if payload.get("reply_to"):
        headers.append(("Reply-To", _mailbox_text(stored_mailbox(payload["reply_to"]), utf8)))
    headers += [
        ("Subject", payload["subject"]),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id),
    ]
    headers += [(name, payload["id"]) for name in CORRELATION_HEADERS]
    headers += list((payload.get("headers") or {}).items())
    return headers


def _mailbox_list_text(values: list[Any], utf8: bool) -> str:
    return ", ".join(_mailbox_text(mailbox, utf8) for mailbox in stored_mailboxes(values))


def _mailbox_text(mailbox: Mailbox, utf8: bool) -> str:
    """A mailbox as header text: the name quoted where RFC 5322 needs it, RFC 2047-encoded
    when not ASCII; in an SMTPUTF8 message (``utf8``) the name is written as UTF-8 (RFC
    6532), quoted."""
    name, address = mailbox["name"], mailbox["address"]
    if not name:
        return address
    if any(len(word) > FOLD_AT - 2 for word in name.split(" ")):
        # A quoted word cannot be folded: a long one is written as encoded words.
        return f"{_encoded_words(name)} <{address}>"
    if utf8:
        return f"{_quoted(name)} <{address}>"
    if name.isascii():
        return formataddr((name, address))
    return f"{_encoded_words(name)} <{address}>"


def _quoted(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _encoded_words(text: str, chunk_bytes: int = 45) -> str:
    """``text`` as RFC 2047 base64 encoded words, each under 75 characters and holding whole
    characters, separated by spaces (where the header may fold; readers join them).
    ``email.header.Header`` is not used: it leaves ASCII runs such as ``:`` unencoded, and
    in a display name those are specials that change how the address reads."""
    words, current = [], b""
    for char in text:
        encoded = char.encode("utf-8")
        if current and len(current) + len(encoded) > chunk_bytes:
            words.append(current)
            current = b""
        current += encoded
    words.append(current)
    return " ".join(f"=?utf-8?b?{base64.b64encode(word).decode('ascii')}?=" for word in words)


WIRE = policy.compat32.clone(linesep="\r\n")
MAX_LINE = 998  # octets per line, CRLF excluded (RFC 5322 2.1.1)
FOLD_AT = 78  # where lines are folded when they can be (RFC 5322 2.1.1)


def _header_line(name: str, value: str) -> str:
    """One header field ending in CRLF: non-ASCII text and words too long for a line are
    RFC 2047 encoded words, then folded at spaces to 78 columns. Address fields arrive
    written (_mailbox_text, names already quoted or encoded): they are only folded."""
    room = MAX_LINE - len(name) - 2
    if name not in ADDRESS_HEADERS and (not value.isascii() or _has_long_word(value, room)):
        value = _encoded_words(value)
    return _fold(f"{name}: {value}") + "\r\n"


def _has_long_word(value: str, room: int) -> bool:
    return len(value) > room and any(len(word) > room for word in value.split(" "))


def _fold(line: str, limit: int = FOLD_AT) -> str:
    """Fold a header line at spaces (RFC 5322 2.2.3). Words longer than the limit stay
    whole: _header_line has encoded any word that would not fit in 998 octets."""
    if len(line) <= limit:
        return line
    folded, current = [], ""
    # Never fold right after "Name:": readers would take the fold's space as text.
    name, _, value = line.partition(" ")
    words = value.split(" ")
    words[0] = f"{name} {words[0]}"
    for word in words:
        if current and len(current) + 1 + len(word) > limit:
            folded.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    folded.append(current)
    return "\r\n".join(folded)


def _compose_ascii(
    payload: dict[str, Any], headers: list[tuple[str, str]], charset: str = "ascii"
) -> bytes:
    # The top-level fields are written here rather than by the email generator, which builds
    # a Header object to fold each one (most of the cost of composing a small message).
    # ``charset`` is "utf-8" for SMTPUTF8 messages, whose addresses are UTF-8 on the wire.
    top = "".join(_header_line(name, value) for name, value in headers)
    subtype, encoding, text = _text_body(payload)
    attachments = payload.get("attachments") or []
    if not attachments:
        body_headers = (
            f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
        )
        return (top + body_headers + _crlf(text)).encode(charset)
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = encoding
    part.set_payload(text)
    msg = MIMEMultipart("mixed")
    msg.attach(part)
    for attachment in attachments:
        msg.attach(_attachment_part(attachment))
    return top.encode(charset) + msg.as_bytes(policy=WIRE)


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
    encoded = attachment["storage_path"]  # already base64, as stored: in 76-column lines
    part.set_payload("\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)))
    part["Content-Transfer-Encoding"] = "base64"
    # Written folded (RFC 2231 continuations for long or non-ASCII names): the generator
    # would leave a long name on one line.
    part["Content-Disposition"] = "attachment;" + _parameter("filename", attachment["filename"])
    return part


def _mime_type(attachment: dict[str, Any]) -> str:
    return str(
        attachment.get("mime_type")
        or mimetypes.guess_type(attachment["filename"])[0]
        or "application/octet-stream"
    )


def _compose_utf8(payload: dict[str, Any], headers: list[tuple[str, str]]) -> bytes:
    """An SMTPUTF8 message: built like any other, its header written in UTF-8."""
    return _compose_ascii(payload, headers, charset="utf-8")


# -- messages with fetched attachments, built as segments -----------------------------------
B64_LINE = 57  # bytes per 76-character base64 line
B64_BLOCK = B64_LINE * 1024


def _base64_lines(attachment: FetchedAttachment) -> Iterator[bytes]:
    """The content as base64 in 76-character CRLF lines, a block at a time."""
    for block in attachment.chunks(B64_BLOCK):
        encoded = base64.b64encode(block)
        yield b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def _compose_segments(
    payload: dict[str, Any],
    headers: list[tuple[str, str]],
    fetched: list[FetchedAttachment],
    links: list[DownloadLink],
) -> tuple[bytes | FetchedAttachment, ...]:
    top = "".join(_header_line(name, value) for name, value in headers) + "MIME-Version: 1.0\r\n"
    is_html = payload.get("content_type") == "html"
    text = _with_links(payload.get("body") or "", is_html, links)
    subtype, encoding, encoded = _text_body({**payload, "body": text})
    text_part = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n{_crlf(encoded)}"
    ).encode("ascii")
    inline = [a for a in fetched if is_html and _inline_id(a, text)]
    inline_ids = {id(a) for a in inline}
    attached = [a for a in fetched if id(a) not in inline_ids]
    segments: list[bytes | FetchedAttachment] = [top.encode("utf-8")]
    if not fetched:
        segments.append(text_part)
        return tuple(segments)
    body: list[bytes | FetchedAttachment] = [text_part]
    if inline:
        body = _multipart("related", [[text_part], *[_part(a, inline=True) for a in inline]])
        if not attached:
            segments += body
            return tuple(segments)
    segments += _multipart("mixed", [body, *[_part(a, inline=False) for a in attached]])
    return tuple(segments)


def _multipart(
    subtype: str, parts: list[list[bytes | FetchedAttachment]]
) -> list[bytes | FetchedAttachment]:
    boundary = f"=_mailproxy_{secrets.token_hex(12)}"
    pieces: list[bytes | FetchedAttachment] = [
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    ]
    for part in parts:
        pieces.append(f"--{boundary}\r\n".encode())
        pieces += part
    pieces.append(f"--{boundary}--\r\n".encode())
    return pieces


def _part(attachment: FetchedAttachment, inline: bool) -> list[bytes | FetchedAttachment]:
    mime = _mime_type({"mime_type": attachment.mime_type, "filename": attachment.filename})
    lines = [
        f"Content-Type: {mime};{_parameter('name', attachment.filename)}",
        "Content-Transfer-Encoding: base64",
        f"Content-Disposition: {'inline' if inline else 'attachment'};"
        + _parameter("filename", attachment.filename),
    ]
    if inline:
        lines.append(f"Content-ID: <{attachment.content_id or attachment.filename}>")
    return ["\r\n".join(lines).encode("ascii") + b"\r\n\r\n", attachment]


def _parameter(key: str, value: str) -> str:
    """A MIME parameter, folded; non-ASCII or long values per RFC 2231 (with continuations)."""
    if value.isascii() and len(value) < 60 and '"' not in value and "\\" not in value:
        return f'\r\n {key}="{value}"'
    encoded = encode_rfc2231(value, "utf-8")
    pieces = re.findall(r"%[0-9A-F]{2}|.", encoded.split("''", 1)[1])
    sections, current = [], "utf-8''"
    for piece in pieces:
        if len(current) + len(piece) > 60:
            sections.append(current)
            current = ""
        current += piece
    sections.append(current)
    if len(sections) == 1:
        return f"\r\n {key}*={sections[0]}"
    return "".join(f"\r\n {key}*{i}*={section};" for i, section in enumerate(sections))[:-1]


def _inline_id(attachment: FetchedAttachment, html_body: str) -> bool:
    """Inline when the HTML refers to it as ``cid:<content_id>`` (or ``cid:<filename>``)."""
    content_id = attachment.content_id or attachment.filename
    if f"cid:{content_id}" in html_body:
        attachment.content_id = content_id
        return True
    return False


def _with_links(body: str, is_html: bool, links: list[DownloadLink]) -> str:
    """The body with a readable list of download links (offloaded attachments) at its end."""
    if not links:
        return body
    until = time.strftime("%Y-%m-%d", time.gmtime(max(link.expires_at for link in links)))
    if not is_html:
        lines = [f"- {link.filename} ({_size(link.size)}): {link.url}" for link in links]
        return (
            body.rstrip("\n")
            + f"\n\nLarge attachments, available for download until {until}:\n"
            + "\n".join(lines)
            + "\n"
        )
    items = "".join(
        f'<li><a href="{html.escape(link.url)}">{html.escape(link.filename)}</a> '
        f"({_size(link.size)})</li>"
        for link in links
    )
    block = f"<hr><p>Large attachments, available for download until {until}:</p><ul>{items}</ul>"
    closing = body.lower().rfind("</body>")
    if closing == -1:
        return body + block
    return body[:closing] + block + body[closing:]


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"
