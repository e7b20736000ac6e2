"""Parse Italian certified email (PEC) receipts from raw bytes into a typed `PecReceipt`.

Receipts are defined by DPR 68/2005 and its technical rules (DM 2 novembre 2005): the
provider's mail carries `X-Ricevuta: <type>` and a `daticert.xml` attachment with the
certified data. This module is pure: no I/O, no database, and it never raises, whatever
the input; malformed mail gives `None` or a receipt filled from the headers alone.

The S/MIME signature (`smime.p7s`, or opaque `application/pkcs7-mime`) is NOT verified:
that needs the providers' trust list published by AgID, which this module does not have.
A receipt is therefore only as trustworthy as the mailbox it was read from.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import Message
from typing import Any, Literal
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeElementTree

PecEventKind = Literal["pec_acceptance", "pec_delivery", "pec_error"]

EVENT_KIND_BY_RECEIPT_TYPE: dict[str, PecEventKind] = {
    "accettazione": "pec_acceptance",
    "presa-in-carico": "pec_acceptance",
    "avvenuta-consegna": "pec_delivery",
    "non-accettazione": "pec_error",
    "errore-consegna": "pec_error",
    "preavviso-errore-consegna": "pec_error",
    "rilevazione-virus": "pec_error",
}

CORRELATION_HEADERS = ("X-Mailproxy-ID", "X-Genro-Mail-ID")

# Bounds that keep hostile input cheap: a real daticert.xml is a few KB, a real receipt
# nests three or four MIME levels.
_MAX_DATICERT_BYTES = 256 * 1024
_MAX_MIME_DEPTH = 8
_MAX_MIME_PARTS = 200
_MAX_BER_DEPTH = 32
_SIGNED_DATA_OID = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2

_ZONE_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


@dataclass(frozen=True)
class PecReceipt:
    receipt_type: str
    event_kind: PecEventKind
    original_message_id: str | None
    recipients: tuple[str, ...]
    ts: float | None
    error: str | None
    error_detail: str | None
    provider: str | None
    identifier: str | None
    subject: str | None
    sender: str | None
    correlation_ids: tuple[str, ...]


@dataclass(frozen=True)
class _Daticert:
    """What daticert.xml says; every field optional because providers and attackers vary."""

    tipo: str | None
    errore: str | None
    msgid: str | None
    destinatari: tuple[str, ...]
    consegna: tuple[str, ...]
    ricezione: tuple[str, ...]
    ts: float | None
    error_detail: str | None
    provider: str | None
    identifier: str | None
    subject: str | None
    sender: str | None


_NO_DATICERT = _Daticert(None, None, None, (), (), (), None, None, None, None, None, None)


def parse_pec_receipt(raw: bytes) -> PecReceipt | None:
    """None when the mail is not a PEC receipt (normal mail, posta-certificata envelopes,
    anomaly envelopes, bounces). Never raises."""
    message = _parse_message(raw)
    if message is None:
        return None
    # Transport envelopes (a PEC received, or an anomaly) are not receipts, whatever else
    # they carry.
    if _header(message, "X-Trasporto") is not None:
        return None
    header_type = (_header(message, "X-Ricevuta") or "").lower()
    if not header_type:
        return None
    parts = list(_walk(message))
    daticert = _find_daticert(parts)
    receipt_type = _choose_type(header_type, daticert)
    if receipt_type is None:
        return None
    return _build(message, parts, receipt_type, daticert)


def _choose_type(header_type: str, daticert: _Daticert | None) -> str | None:
    # daticert.xml is inside the signature and the header is not, so daticert wins when it
    # names a receipt type; otherwise the header is the best we have.
    if daticert is not None and daticert.tipo in EVENT_KIND_BY_RECEIPT_TYPE:
        return daticert.tipo
    if header_type in EVENT_KIND_BY_RECEIPT_TYPE:
        return header_type
    return None


def _build(
    message: Message, parts: list[Message], receipt_type: str, daticert: _Daticert | None
) -> PecReceipt:
    # Without a readable daticert.xml the receipt still says what happened to which message.
    certified = daticert or _NO_DATICERT
    header_msgid = _normalise_msgid(_header(message, "X-Riferimento-Message-ID"))
    return PecReceipt(
        receipt_type=receipt_type,
        event_kind=EVENT_KIND_BY_RECEIPT_TYPE[receipt_type],
        original_message_id=certified.msgid or header_msgid,
        recipients=_recipients(receipt_type, certified),
        ts=certified.ts,
        error=certified.errore,
        error_detail=certified.error_detail,
        provider=certified.provider,
        identifier=certified.identifier,
        subject=certified.subject,
        sender=certified.sender,
        correlation_ids=_correlation_ids(parts),
    )


def _recipients(receipt_type: str, daticert: _Daticert) -> tuple[str, ...]:
    # Acceptance covers the whole envelope (<destinatari>); presa-in-carico names the
    # addresses it was taken in charge for in <ricezione>. Delivery and error receipts
    # are per recipient (<consegna>); non-accettazione has none, so fall back to the
    # addressees it refused.
    if receipt_type == "presa-in-carico" and daticert.ricezione:
        return daticert.ricezione
    if EVENT_KIND_BY_RECEIPT_TYPE[receipt_type] != "pec_acceptance" and daticert.consegna:
        return daticert.consegna
    return daticert.destinatari


# --- MIME ---------------------------------------------------------------------------


def _parse_message(raw: bytes) -> Message | None:
    if not isinstance(raw, bytes | bytearray):
        return None
    try:
        return email.message_from_bytes(bytes(raw))
    except Exception:  # the stdlib parser has crash paths on hostile mail; none is ours
        return None


def _header(message: Message, name: str) -> str | None:
    """The first `name` header, RFC 2047 decoded and unfolded; None if absent or empty."""
    try:
        value = message.get(name)
        if value is None:
            return None
        text = str(make_header(decode_header(str(value))))
    except Exception:  # undecodable encoded-words and unknown charsets: treat as absent
        return None
    text = " ".join(text.split())
    return text or None


def _walk(message: Message) -> Iterator[Message]:
    """Every MIME part, without entering attached messages (postacert.eml is the original
    mail, not part of the receipt) and with bounded depth and count."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    seen = 0
    while stack and seen < _MAX_MIME_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        children = _children(part) if depth < _MAX_MIME_DEPTH else []
        stack.extend((child, depth + 1) for child in reversed(children))


def _children(part: Message) -> list[Message]:
    if _content_type(part).startswith("message/"):
        return []
    if _is_opaque_signed(part):
        inner = _opaque_signed_content(part)
        return [] if inner is None else [inner]
    payload = part.get_payload()
    if part.is_multipart() and isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def _decoded_payload(part: Message) -> bytes | None:
    try:
        payload: Any = part.get_payload(decode=True)
    except Exception:  # broken transfer encodings: the part is unreadable, not fatal
        return None
    return payload if isinstance(payload, bytes) else None


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or part.get_param("name") or ""
    except Exception:  # malformed RFC 2231 parameters
        return ""
    return str(name).strip().lower() if isinstance(name, str) else ""


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # malformed Content-Type: treat as opaque bytes
        return "application/octet-stream"


# --- opaque S/MIME (application/pkcs7-mime) -------------------------------------------


def _is_opaque_signed(part: Message) -> bool:
    return _content_type(part) in ("application/pkcs7-mime", "application/x-pkcs7-mime")


def _opaque_signed_content(part: Message) -> Message | None:
    """The MIME entity inside an opaque signedData, read without verifying the signature."""
    der = _decoded_payload(part)
    content = _pkcs7_signed_content(der) if der else None
    if content is None:
        return None
    return _parse_message(content)


def _pkcs7_signed_content(der: bytes) -> bytes | None:
    # ContentInfo ::= SEQUENCE { contentType OID, [0] EXPLICIT SignedData }
    # SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo SEQUENCE {
    #   eContentType OID, [0] EXPLICIT OCTET STRING }, ... }
    content_info = _ber_children(der)
    if len(content_info) != 1:
        return None
    outer = _ber_children(content_info[0][1])
    if len(outer) < 2 or outer[0] != (0x06, _SIGNED_DATA_OID) or outer[1][0] != 0xA0:
        return None  # enveloped (encrypted) or other content: nothing we can read
    signed_data = _ber_children(outer[1][1])
    signed_fields = _ber_children(signed_data[0][1]) if signed_data else []
    if len(signed_fields) < 3:
        return None
    encap = _ber_children(signed_fields[2][1])
    if len(encap) < 2 or encap[1][0] != 0xA0:
        return None
    return _octet_string(encap[1][1])


def _octet_string(inner: bytes) -> bytes | None:
    # Signers often emit BER with a constructed OCTET STRING made of chunks.
    elements = _ber_children(inner)
    if len(elements) != 1:
        return None
    tag, value = elements[0]
    if tag == 0x04:
        return value
    if tag == 0x24:
        chunks = _ber_children(value)
        return b"".join(chunk for chunk_tag, chunk in chunks if chunk_tag == 0x04)
    return None


def _ber_children(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) TLVs of `data`, or [] if it is not well-formed BER."""
    items: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        element = _ber_element(data, pos, 0)
        if element is None:
            return []
        tag, content, pos = element
        if tag == 0 and not content:  # end-of-contents of an indefinite length
            break
        items.append((tag, content))
    return items


def _ber_element(data: bytes, pos: int, depth: int) -> tuple[int, bytes, int] | None:
    # Multi-byte tags never occur in signedData; the depth bound stops hostile nesting of
    # indefinite lengths from exhausting the stack (real signedData nests about 10 deep).
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F or depth > _MAX_BER_DEPTH:
        return None
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first == 0x80:
        # Indefinite length (constructed only): the content ends where its children do.
        end = _indefinite_end(data, pos, depth + 1) if tag & 0x20 else None
        return None if end is None else (tag, data[pos:end], end + 2)
    length, pos = _ber_length(data, pos, first)
    if length is None or pos + length > len(data):
        return None
    return tag, data[pos : pos + length], pos + length


def _ber_length(data: bytes, pos: int, first: int) -> tuple[int | None, int]:
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count > 4 or pos + count > len(data):
        return None, pos
    return int.from_bytes(data[pos : pos + count], "big"), pos + count


def _indefinite_end(data: bytes, pos: int, depth: int) -> int | None:
    while pos + 2 <= len(data):
        if data[pos] == 0 and data[pos + 1] == 0:
            return pos
        element = _ber_element(data, pos, depth)
        if element is None:
            return None
        pos = element[2]
    return None


# --- daticert.xml ---------------------------------------------------------------------


def _find_daticert(parts: list[Message]) -> _Daticert | None:
    named = [p for p in parts if _filename(p) == "daticert.xml"]
    # Lenient: a provider that forgets the file name still sends the XML as a part.
    xml_parts = named or [p for p in parts if _content_type(p) in ("application/xml", "text/xml")]
    for part in xml_parts:
        payload = _decoded_payload(part)
        if payload:
            return _parse_daticert(payload)
    return None


def _parse_daticert(data: bytes) -> _Daticert | None:
    if len(data) > _MAX_DATICERT_BYTES:
        return None
    try:
        # defusedxml refuses entity declarations and external references, so neither a
        # "billion laughs" nor a file/URL entity can be expanded.
        root = SafeElementTree.fromstring(data)
    except Exception:  # malformed or hostile XML: the caller falls back to the headers
        return None
    if not isinstance(root, Element) or _local(root.tag) != "postacert":
        return None
    return _Daticert(
        tipo=_attr(root, "tipo"),
        errore=_error(root),
        msgid=_normalise_msgid(_text(root, "msgid")),
        destinatari=_addresses(root, "destinatari"),
        consegna=_addresses(root, "consegna"),
        ricezione=_addresses(root, "ricezione"),
        ts=_timestamp(_first(root, "data")),
        error_detail=_text(root, "errore-esteso"),
        provider=_text(root, "gestore-emittente"),
        identifier=_text(root, "identificativo"),
        subject=_text(root, "oggetto"),
        sender=_text(root, "mittente"),
    )


def _local(tag: object) -> str:
    """Tag name without namespace; comments and processing instructions have no name."""
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _elements(root: Element, name: str) -> Iterator[Element]:
    return (el for el in root.iter() if _local(el.tag) == name)


def _first(root: Element, name: str) -> Element | None:
    return next(_elements(root, name), None)


def _clean(value: str | None) -> str | None:
    text = " ".join(value.split()) if value else ""
    return text or None


def _text(root: Element, name: str) -> str | None:
    element = _first(root, name)
    return None if element is None else _clean("".join(element.itertext()))


def _attr(element: Element, name: str) -> str | None:
    value = _clean(element.get(name))
    return value.lower() if value else None


def _error(root: Element) -> str | None:
    errore = _attr(root, "errore")
    return None if errore in (None, "nessuno") else errore


def _addresses(root: Element, name: str) -> tuple[str, ...]:
    found: list[str] = []
    for element in _elements(root, name):
        # One address per element per the DTD; some providers join several with commas.
        for piece in re.split(r"[,;\s]+", "".join(element.itertext())):
            address = piece.strip().strip("<>").lower()
            if address and address not in found:
                found.append(address)
    return tuple(found)


def _timestamp(data: Element | None) -> float | None:
    if data is None:
        return None
    day, time_of_day = _text(data, "giorno"), _text(data, "ora")
    offset = _zone(data.get("zona"))
    if day is None or time_of_day is None or offset is None:
        # Guessing a missing zone (Italy is +0100 or +0200) would be silently off by an hour.
        return None
    try:
        naive = datetime.strptime(f"{day} {time_of_day}", "%d/%m/%Y %H:%M:%S")
    except ValueError:
        return None
    return naive.replace(tzinfo=timezone(offset)).timestamp()


def _zone(value: str | None) -> timedelta | None:
    match = _ZONE_RE.match((value or "").strip())
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) > 59:
        return None
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return -delta if sign == "-" else delta


def _normalise_msgid(value: str | None) -> str | None:
    """Message-IDs are compared with the ones we sent, which keep their angle brackets."""
    text = "".join((value or "").split()).strip("<>")
    return f"<{text}>" if text else None


# --- the original message (postacert.eml) ---------------------------------------------


def _correlation_ids(parts: list[Message]) -> tuple[str, ...]:
    found: list[str] = []
    for original in _attached_originals(parts):
        for name in CORRELATION_HEADERS:
            value = _header(original, name)
            if value is not None and value not in found:
                found.append(value)
    return tuple(found)


def _attached_originals(parts: list[Message]) -> Iterator[Message]:
    for part in parts:
        if _content_type(part) == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                yield payload[0]
        elif _filename(part) == "postacert.eml":
            # Some providers attach it as application/octet-stream.
            raw = _decoded_payload(part)
            original = _parse_message(raw) if raw else None
            if original is not None:
                yield original
