"""Bounce (DSN) parsing: the raw bytes of an inbound mail in, a typed BounceReport or None out.

Pure functions, no I/O. RFC 3464 / RFC 6533 reports are read field by field; the common
plain-text formats (Exchange, Gmail, Yahoo, Postfix, Exim, qmail) have readers of their own;
anything else falls back to flufl.bounce. Guarantee: nothing here raises on any input; mail
that cannot be read yields None or the part of the report that could be read.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import quopri
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from email import message_from_bytes, message_from_string, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses
from typing import Literal

from flufl.bounce import all_failures

from mailproxy_models.bounce_reasons import (
    REASONS,
    BounceReason,
    classify_reason,
    is_hard,
    reason_from_category,
    reason_from_text,
    refused_command,
)

BounceType = Literal["hard", "soft"]


@dataclass(frozen=True)
class BouncedRecipient:
    recipient: str  # lowercased, no angle brackets, no "rfc822;" type
    action: str  # RFC 3464: failed | delayed | delivered | relayed | expanded
    status: str | None  # enhanced status ("5.1.1") when known
    bounce_type: BounceType | None  # None for delivered / relayed / expanded
    diagnostic: str | None  # what the server said, without "smtp;", at most 1000 chars
    remote_mta: str | None  # without "dns;"
    smtp_code: int | None  # three-digit reply code (550) when found
    reason: str | None = None  # a BounceReason value; None for delivered / relayed / expanded


@dataclass(frozen=True)
class BounceReport:
    format: str  # rfc3464 | exchange | gmail | yahoo | postfix | exim | qmail | ses | text | flufl
    recipients: tuple[BouncedRecipient, ...]
    correlation_ids: tuple[str, ...]  # X-Mailproxy-ID / X-Genro-Mail-ID of the original
    original_message_id: str | None  # Message-ID of the returned original
    reporting_mta: str | None


_MAX_DIAGNOSTIC = 1000
_MAX_DEPTH = 20
# The report is at the top of a bounce; the plain-text readers never look further than this.
_MAX_REPORT_TEXT = 100_000
# flufl.bounce reads every line of every part, some detectors once per part: on a returned
# original with a large attachment that takes seconds, so it gets the head of the mail only.
_MAX_FLUFL_BYTES = 128 * 1024
_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_CORRELATION_HEADERS = frozenset({"x-mailproxy-id", "x-genro-mail-id"})
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_ORIGINAL_TYPES = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
)

# The lookbehind makes a match start at the beginning of a run only: linear on long lines.
_ADDRESS = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_ANGLE_ADDRESS_LINE = re.compile(r"<([^<>\s@]+@[^<>\s]+)>:?\s*(.*)")
# Lookarounds keep IP addresses ("192.0.2.10") and versions from passing for codes.
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_SMTP_CODE = re.compile(r"(?<![\w.])([245]\d\d)(?=[ \t:-]|$)", re.M)
_TYPE_PREFIX = re.compile(r"^\s*[A-Za-z0-9-]+\s*;\s*")
_QUOTED_HEADER = re.compile(
    r"^[ \t>]*(X-Mailproxy-ID|X-Genro-Mail-ID|Message-ID)[ \t]*:[ \t]*(\S[^\n]*)$", re.I | re.M
)
# Readers stop here: what follows is the returned original, not the report.
_COPY_MARKER = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*)?(?:Below this line is a copy of the message|"
    r"This is a copy of the message|Original message headers:|Message headers follow|"
    r"Unsent message follows|Original message follows|Original message\s*-{2,}|"
    r"The original message (?:follows|headers)|Returned message|Text of returned message|"
    r"Included is a copy of the message header|-+ ?The header of the original message)",
    re.I | re.M,
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"out[ -]of[ -](?:the[ -])?office|automatic reply|auto[ -]?reply|autoresponse|"
    r"risposta automatica|fuori ufficio|abwesenheitsnotiz|automatische antwort|"
    r"r[ée]ponse automatique|absence du bureau|fuera de la oficina|respuesta autom[áa]tica",
    re.I,
)
# "MAILER-DAEMON" alone (no domain) is what some gateways write in From.
_BOUNCE_SENDER = re.compile(
    r"(?:mailer-daemon|post_?master|microsoftexchange[0-9a-f]*)(?:@|>|\s*$)", re.I
)
# Anchored: a human "Re: ... undeliverable?" thread is not a bounce.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliver|undelivered mail|delivery status notification|delivery failure|"
    r"delivery failed|mail delivery failed|failure notice|returned mail|warning: message|"
    r"delayed mail|message not delivered|non recapitabile|unzustellbar|non remis|"
    # Japanese carriers: "mail error notice"
    r"メールエラー通知)",
    re.I,
)


def parse_bounce(raw: bytes) -> BounceReport | None:
    """The bounce report; None when the mail is not a bounce.

    Not bounces: normal mail, auto-replies / out-of-office, PEC receipts.
    """
    try:
        lines = _lf_lines(bytes(raw))
        return _read_bounce(_parse(lines), lines)
    except Exception:  # guarantee to the poller: mail from outside never makes this raise
        return None


def is_auto_reply(raw: bytes) -> bool:
    """Auto-replies / out-of-office / vacation replies, which are never bounces."""
    try:
        return _is_auto_reply(_parse(raw))
    except Exception:  # same guarantee as parse_bounce
        return False


def _parse(raw: bytes) -> Message:
    # compat32 never raises when a malformed header is read, unlike policy.default.
    return message_from_bytes(_lf_lines(bytes(raw)), policy=policy.compat32)


_LONE_CR = re.compile(rb"\r(?!\n)")


def _lf_lines(raw: bytes) -> bytes:
    """CR-only line endings (old Mac mail systems) as LF: the email package reads CR as a
    line end in headers but not in encoded bodies."""
    return _LONE_CR.sub(b"\n", raw) if b"\r" in raw else raw


def _read_bounce(msg: Message, raw: bytes) -> BounceReport | None:
    """A readable DSN wins; then, for automated mail only, our plain-text readers, which come
    before the auto-reply check because Exim and Gmail mark their bounces auto-replied; then
    flufl.bounce; a DSN nobody could read still yields its returned original's ids."""
    if _has_header(msg, "x-ricevuta") or _has_header(msg, "x-trasporto"):
        return None  # PEC receipts have their own reader
    if _is_feedback_report(msg):
        return None  # a complaint (ARF) about a delivered message, not a failure
    dsn = _read_dsn(msg)
    if dsn is not None and dsn[0]:
        return _report(msg, "rfc3464", dsn[0], dsn[1])
    notification = _read_ses_notification(msg)
    if notification is not None:
        return _report(msg, "ses", notification, None) if notification else None
    is_report = dsn is not None or _is_delivery_report(msg)
    if not is_report and not _looks_automated(msg):
        return None
    plain = _read_plain(msg)
    if plain is not None:
        return _report(msg, *plain)
    inline = _read_inline_fields(msg)
    if inline:
        return _report(msg, "rfc3464", inline, None)
    if not is_report and _has_auto_reply_marks(msg) and not _sent_by_mail_system(msg):
        return None
    senders = _senders(msg)
    generic = _read_generic(msg, senders)
    if generic:
        return _report(msg, "text", generic, None)
    # flufl.bounce also reports the original's sender on some formats: never that address.
    failures = [f for f in _read_flufl(raw) if f.recipient not in senders]
    if failures:
        return _report(msg, "flufl", failures, None)
    if is_report:  # a DSN we could not read still names the original, which the caller needs
        return _report(msg, "rfc3464", [], dsn[1] if dsn else None)
    return None


def _report(
    msg: Message, fmt: str, recipients: list[BouncedRecipient], reporting_mta: str | None
) -> BounceReport:
    ids, message_id = _correlation(msg)
    recipients = _with_refused_command(msg, _with_text_reason(msg, recipients))
    return BounceReport(fmt, tuple(recipients), ids, message_id, reporting_mta)


def _with_text_reason(msg: Message, recipients: list[BouncedRecipient]) -> list[BouncedRecipient]:
    """A recipient whose report gives no words of the server (an empty Diagnostic-Code): the
    human text of the bounce may say why."""
    vague = (BounceReason.UNDETERMINED.value, BounceReason.EXPIRED.value)
    if not any(r.reason in vague and not r.diagnostic for r in recipients):
        return recipients
    text = _report_text(msg)
    result = []
    for rcpt in recipients:
        # An expired queue (x.4.7) whose text names why it kept failing gets that cause.
        if rcpt.reason in vague and not rcpt.diagnostic:
            others = [r.recipient for r in recipients if r.recipient != rcpt.recipient]
            found = reason_from_text(_around(text, rcpt.recipient, others))
            if found is BounceReason.HOST_UNKNOWN and (rcpt.status or "").startswith("4"):
                found = BounceReason.NETWORK_ERROR  # a lookup that failed for now
            if (rcpt.status or "").endswith(".4.7") and found not in _WHY_A_QUEUE_EXPIRED:
                found = None  # other words of that text are not about this failure
            if found is not None and REASONS[found].failure:
                rcpt = replace(
                    rcpt, reason=found.value, bounce_type=_type_of(found, rcpt.action, rcpt.status)
                )
        result.append(rcpt)
    return result


# What an expired queue's text may name as the cause it kept failing on.
_WHY_A_QUEUE_EXPIRED = frozenset({BounceReason.NETWORK_ERROR, BounceReason.BLOCKED})


def _around(text: str, address: str, others: list[str] | None = None) -> str:
    """The lines of the text from the address's first mention up to the first mention of
    another recipient after it (whose words are not this one's), else the whole text."""
    lowered = text.lower()
    start = lowered.find(address.lower())
    if start < 0:
        return text
    ends = [lowered.find(other.lower(), start + len(address)) for other in others or []]
    end = min([e for e in ends if e > start], default=len(text))
    return text[start:end]


def _with_refused_command(
    msg: Message, recipients: list[BouncedRecipient]
) -> list[BouncedRecipient]:
    """A "user unknown" whose diagnostic does not say which command it answered: the
    bounce's text may (a session transcript, "after end of data")."""
    unknown = BounceReason.USER_UNKNOWN.value
    undetermined = BounceReason.UNDETERMINED.value
    staged = (unknown, BounceReason.FILTERED.value, undetermined)
    if not any(r.reason in staged for r in recipients):
        return recipients
    unknown_filtered = BounceReason.FILTERED.value
    command = refused_command(_report_text(msg)) or _family_command(msg)
    if command is None:
        return recipients
    result = []
    for rcpt in recipients:
        if (
            rcpt.reason in (unknown, unknown_filtered)
            or (rcpt.reason == undetermined and rcpt.diagnostic)
        ) and refused_command(rcpt.diagnostic or "") is None:
            reason = classify_reason(rcpt.smtp_code, rcpt.status, rcpt.diagnostic, command)
            rcpt = replace(
                rcpt, reason=reason.value, bounce_type=_type_of(reason, rcpt.action, rcpt.status)
            )
        result.append(rcpt)
    return result


# Mail systems whose reports give, per recipient, what the next server answered to RCPT TO
# (their own header names them): a "user unknown" there was said of the address itself.
_RCPT_REPORTERS = ("x-nai-header",)  # McAfee Email Gateway


def _family_command(msg: Message) -> str | None:
    return "RCPT" if any(_has_header(msg, name) for name in _RCPT_REPORTERS) else None


# --- message structure -------------------------------------------------------------------


def _parts(msg: Message, depth: int = 0) -> Iterator[Message]:
    """The bounce and its parts in order; a message/* part is a leaf, never descended into."""
    yield msg
    if msg.get_content_maintype() != "message" and depth < _MAX_DEPTH:
        for sub in _subparts(msg):
            yield from _parts(sub, depth + 1)


def _subparts(msg: Message) -> list[Message]:
    """The parsed sub-messages of a multipart or message/* part; [] for a leaf.

    Never get_payload() on a leaf: compat32 then decodes it with the declared charset, which
    raises on odd charset names.
    """
    if not msg.is_multipart():
        return []
    return [sub for sub in msg.get_payload() if isinstance(sub, Message)]


def _unsurrogate(text: str) -> str:
    """compat32 keeps raw 8-bit bytes as surrogates; RFC 6532/6533 say they are UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def _header(msg: Message, name: str) -> str:
    """First value of a header, RFC 2047 words decoded, unfolded; "" when absent."""
    for key, value in msg.raw_items():
        if key.strip().lower() == name:
            text = _unsurrogate(str(value))
            try:
                text = str(make_header(decode_header(text)))
            except Exception:  # undecodable encoded words: keep them as they came
                text = str(text)
            return " ".join(text.split())
    return ""


def _has_header(msg: Message, name: str) -> bool:
    return any(key.strip().lower() == name for key, _ in msg.raw_items())


def _body_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset() or "utf-8"
        text = payload.decode(charset, "replace")
    except (LookupError, TypeError, ValueError):
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _human_text(msg: Message) -> str:
    """The readable text of the bounce: its text/plain parts, else its HTML without tags."""
    plain: list[str] = []
    markup: list[str] = []
    for part in _parts(msg):
        ctype = part.get_content_type()
        # A multipart whose boundary is missing arrives as one string: read it as text.
        if ctype == "text/plain" or (part.is_multipart() is False and ctype.startswith("multi")):
            plain.append(_body_text(part))
        elif ctype == "text/html":
            markup.append(_html_text(_body_text(part)))
    return "\n".join(plain or markup)


def _html_text(markup: str) -> str:
    # [^<>] rather than [^>]: a run of unclosed "<" must not make this quadratic.
    markup = re.sub(r"<(?:br|/p|/div|/tr|/li)\b[^<>]*>", "\n", markup, flags=re.I)
    return html.unescape(re.sub(r"<[^<>]*>", "", markup))


def _is_delivery_report(msg: Message) -> bool:
    report_type = msg.get_param("report-type")
    return msg.get_content_type() == "multipart/report" and (
        isinstance(report_type, str) and report_type.strip().lower() == "delivery-status"
    )


def _is_feedback_report(msg: Message) -> bool:
    report_type = msg.get_param("report-type")
    if isinstance(report_type, str) and report_type.strip().lower() == "feedback-report":
        return True
    return any(p.get_content_type() == "message/feedback-report" for p in _parts(msg))


def _looks_automated(msg: Message) -> bool:
    null_sender = _has_header(msg, "return-path") and _header(msg, "return-path") in ("<>", "")
    return (
        null_sender
        or bool(_BOUNCE_SENDER.search(_header(msg, "from")))
        or bool(_BOUNCE_SUBJECT.search(_header(msg, "subject")))
        or msg.get_content_type() == "multipart/report"
    )


def _is_auto_reply(msg: Message) -> bool:
    # Exim and Gmail bounces carry "Auto-Submitted: auto-replied" too: a bounce is never one.
    if _is_delivery_report(msg) or any(p.get_content_type() in _DSN_TYPES for p in _parts(msg)):
        return False
    if not _has_auto_reply_marks(msg):
        return False
    # A mail system's bounce (by its sender or subject) is marked auto-replied by some MTAs.
    return not (
        _sent_by_mail_system(msg) or (_looks_automated(msg) and _read_plain(msg) is not None)
    )


def _has_auto_reply_marks(msg: Message) -> bool:
    if _header(msg, "auto-submitted").lower().startswith("auto-replied"):
        return True
    if _has_header(msg, "x-autoreply") or _has_header(msg, "x-autorespond"):
        return True
    if _header(msg, "precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_REPLY_SUBJECT.search(_header(msg, "subject")))


# --- the returned original ---------------------------------------------------------------


def _correlation(msg: Message) -> tuple[tuple[str, ...], str | None]:
    try:
        headers = _original_headers(msg)
    except Exception:  # a broken original must not cost us the recipients
        return (), None
    ids: list[str] = []
    message_id: str | None = None
    for name, value in headers:
        key = name.strip().lower()
        clean = " ".join(value.split())
        if key in _CORRELATION_HEADERS and clean and clean not in ids:
            ids.append(clean)
        elif key == "message-id" and message_id is None and clean:
            message_id = "".join(clean.split())
    return tuple(ids), message_id


def _original_headers(msg: Message) -> list[tuple[str, str]]:
    """Headers of the returned original: an attached message or header part, else quoted text."""
    for part in _parts(msg):
        if part.get_content_type() not in _ORIGINAL_TYPES:
            continue
        if part.is_multipart():
            original = next(iter(_subparts(part)), Message())
        else:
            original = message_from_string(_body_text(part), policy=policy.compat32)
        return [(key, _unsurrogate(str(value))) for key, value in original.raw_items()]
    return [(m.group(1), m.group(2)) for m in _QUOTED_HEADER.finditer(_human_text(msg))]


# --- RFC 3464 / RFC 6533 -----------------------------------------------------------------


def _read_dsn(msg: Message) -> tuple[list[BouncedRecipient], str | None] | None:
    """Recipients and Reporting-MTA of every delivery-status part; None when there is none."""
    parts = [p for p in _parts(msg) if p.get_content_type() in _DSN_TYPES]
    if not parts:
        return None
    recipients: list[BouncedRecipient] = []
    reporting_mta: str | None = None
    for part in parts:
        for fields in _field_blocks(_dsn_text(part)):
            reporting_mta = reporting_mta or _mta(fields.get("reporting-mta", ""))
            recipient = _dsn_recipient(fields)
            if recipient is not None:
                recipients.append(recipient)
    return recipients, reporting_mta


def _dsn_text(part: Message) -> str:
    """The fields of a delivery-status part as text, however the email package split them."""
    if not part.is_multipart():
        return _body_text(part)
    # The parser made one Message per block (or, for the global type, one with the rest as body);
    # work in bytes so raw UTF-8 (RFC 6533) survives the round trip.
    chunks: list[bytes] = []
    for sub in _subparts(part):
        fields = "\n".join(f"{key}: {value}" for key, value in sub.raw_items())
        body = sub.get_payload(decode=True)
        chunks.append(
            fields.encode("utf-8", "surrogateescape")
            + (b"\n\n" + body if isinstance(body, bytes) and body else b"")
        )
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    raw = _undo_transfer_encoding(b"\n\n".join(chunks), encoding)
    return raw.decode("utf-8", "replace").replace("\r\n", "\n")


def _undo_transfer_encoding(raw: bytes, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", raw) + b"==")
        if encoding == "quoted-printable":
            return quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return raw
    return raw


def _field_blocks(text: str) -> list[dict[str, str]]:
    """Blank-line separated blocks of "Name: value" fields, folded lines joined.

    A repeated recipient field also starts a block: some MTAs omit the blank line.
    """
    blocks: list[dict[str, list[str]]] = [{}]
    last: list[str] | None = None  # the field that folded lines continue
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not line.strip():
            blocks.append({})
            last = None
        elif line[0] in " \t":
            if last is not None:
                last.append(line.strip())
        elif sep and name and " " not in name:
            if _starts_recipient(name, blocks[-1]):
                blocks.append({})
            # A field repeated within a block: the first one counts.
            last = None if name in blocks[-1] else blocks[-1].setdefault(name, [value.strip()])
    return [{name: " ".join(parts) for name, parts in block.items()} for block in blocks if block]


def _starts_recipient(name: str, fields: dict[str, list[str]]) -> bool:
    return name in ("final-recipient", "original-recipient") and name in fields


def _dsn_recipient(fields: dict[str, str]) -> BouncedRecipient | None:
    address = usable_address(fields.get("final-recipient", "")) or usable_address(
        fields.get("original-recipient", "")
    )
    if not address:
        return None
    raw_diagnostic = _decoded_words(fields.get("diagnostic-code", ""))
    diagnostic = _strip_type(raw_diagnostic)
    status = _status(fields.get("status", "")) or _status(diagnostic or "")
    action = _action(fields.get("action", ""), status)
    code = _smtp_code(diagnostic or "")
    kind = raw_diagnostic.split(";", 1)[0] if ";" in raw_diagnostic else None
    bounce_type, reason = _classify(action, status, code, diagnostic or "", kind)
    categorised = reason_from_category(fields.get("x-powermta-bouncecategory"))
    if bounce_type is not None and categorised is not None:
        bounce_type, reason = _type_of(categorised, action, status), categorised.value
    return BouncedRecipient(
        recipient=address,
        action=action,
        status=status,
        bounce_type=bounce_type,
        diagnostic=_clip(diagnostic),
        remote_mta=_mta(fields.get("remote-mta", "")),
        smtp_code=code,
        reason=reason,
    )


# --- field values ------------------------------------------------------------------------


def _decoded_words(value: str) -> str:
    """A field value with its RFC 2047 encoded words and raw ISO-2022-JP runs (Japanese
    servers write both into Diagnostic-Code) as text."""
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except Exception:  # undecodable encoded words: keep them as they came
            return value
    if "\x1b$" in value:
        try:
            return value.encode("ascii").decode("iso-2022-jp")
        except (UnicodeError, LookupError):
            return value
    return value


def _strip_type(value: str) -> str | None:
    """ "dns; mx.example.net" -> "mx.example.net", "smtp; 550 ..." -> "550 ..."."""
    clean = " ".join(_TYPE_PREFIX.sub("", value, count=1).split())
    return clean or None


def _mta(value: str) -> str | None:
    """ "dns; mx.example.net. (192.0.2.44, comment)" -> "mx.example.net"."""
    tokens = (_strip_type(value) or "").split()
    return (tokens[0].rstrip(".") or None) if tokens else None


def _status(text: str) -> str | None:
    found = _STATUS.search(text)
    return ".".join(found.groups()) if found else None


_FAILURE_STATUS = re.compile(r"(?<![\w.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
_FAILURE_CODE = re.compile(r"(?<![\w.])([45]\d\d)(?=[ \t:-]|$)", re.M)


def _failure_status(text: str) -> str | None:
    found = _FAILURE_STATUS.search(text)
    return ".".join(found.groups()) if found else None


def _failure_code(text: str) -> int | None:
    found = _FAILURE_CODE.search(text)
    return int(found.group(1)) if found else None


def _smtp_code(text: str) -> int | None:
    found = _SMTP_CODE.search(text)
    return int(found.group(1)) if found else None


def _action(value: str, status: str | None) -> str:
    words = value.strip().lower().split()
    if words and words[0] in _ACTIONS:
        return words[0]
    # Missing or unknown Action: the status class says what happened.
    return {"4": "delayed", "2": "delivered"}.get(status[0] if status else "", "failed")


def _classify(
    action: str,
    status: str | None,
    smtp_code: int | None = None,
    text: str = "",
    diagnostic_type: str | None = None,
) -> tuple[BounceType | None, str | None]:
    """Hard or soft and the reason: the reason decides, never the status class alone."""
    if action not in ("failed", "delayed"):
        return None, None
    reason = classify_reason(smtp_code, status, text, refused_command(text), diagnostic_type)
    if reason in (BounceReason.UNDETERMINED, BounceReason.DELIVERED) and (
        (status or str(smtp_code or ""))[:1] == "4" or action == "delayed"
    ):
        # A temporary failure the server gave up on: its queue expired.
        reason = BounceReason.EXPIRED
    return _type_of(reason, action, status), reason.value


def _type_of(reason: BounceReason, action: str, status: str | None = None) -> BounceType:
    return "hard" if is_hard(reason, action, status) else "soft"


def _clip(text: str | None) -> str | None:
    if not text:
        return None
    clean = " ".join(text.split())
    return clean[:_MAX_DIAGNOSTIC] or None


def _first_group(pattern: re.Pattern[str] | None, text: str) -> str | None:
    found = pattern.search(text) if pattern else None
    return found.group(1) if found else None


# --- plain-text formats ------------------------------------------------------------------


def _plain_recipient(
    address: str, text: str, remote_mta: str | None = None, action: str = "failed"
) -> BouncedRecipient:
    """A recipient read from human text: codes and classification come from that text; a
    session transcript quotes successes too ("250 2.1.5 Ok"), so a failure's codes win."""
    status = _failure_status(text) or _status(text)
    code = _failure_code(text) or _smtp_code(text)
    bounce_type, reason = _classify(action, status, code, text)
    return BouncedRecipient(
        recipient=address.strip("<>").lower(),
        action=action,
        status=status,
        bounce_type=bounce_type,
        diagnostic=_clip(text),
        remote_mta=remote_mta,
        smtp_code=code,
        reason=reason,
    )


def _angle_blocks(text: str) -> list[tuple[str, str]]:
    """Postfix/qmail/Yahoo style "<addr>: text" blocks, each up to a blank line."""
    blocks: list[tuple[str, list[str]]] = []
    open_block = False
    for line in text.splitlines():
        start = _ANGLE_ADDRESS_LINE.match(line)
        if start:
            blocks.append((start.group(1), [start.group(2)]))
            open_block = True
        elif not line.strip():
            open_block = False
        elif open_block:
            blocks[-1][1].append(line.strip())
    return [(address, " ".join(" ".join(lines).split())) for address, lines in blocks]


_REMOTE_SAID = re.compile(r"^.*?(?:said|Remote host said):\s*", re.I)
_HOST_BRACKET = re.compile(r"\b(?:host|connect to) ([\w.-]+?)\s?\[")


def _read_postfix(text: str) -> list[BouncedRecipient]:
    action = "delayed" if "THIS IS A WARNING ONLY" in text else "failed"
    return [
        _plain_recipient(address, _REMOTE_SAID.sub("", body, count=1), _host(body), action)
        for address, body in _angle_blocks(text)
    ]


def _read_yahoo(text: str) -> list[BouncedRecipient]:
    return [
        _plain_recipient(address, _REMOTE_SAID.sub("", body, count=1))
        for address, body in _angle_blocks(text)
    ]


def _read_qmail(text: str) -> list[BouncedRecipient]:
    hosts = re.compile(r"(?:Giving up on|Connected to) ([\w:-]+(?:\.[\w:-]+)*)")
    return [
        _plain_recipient(address, body, _first_group(hosts, body))
        for address, body in _angle_blocks(text)
    ]


def _host(text: str) -> str | None:
    return _first_group(_HOST_BRACKET, text)


def _read_exim(text: str) -> list[BouncedRecipient]:
    """Indented address lines under "address(es) failed:" or "not yet been delivered", details
    indented deeper below each."""
    section = re.search(
        r"(address\(es\) failed|not yet been delivered (?:is|are)):?[ \t]*\n(.*)", text, re.S | re.I
    )
    if not section:
        return []
    action = "failed" if section.group(1).lower().endswith("failed") else "delayed"
    blocks: list[tuple[str, list[str]]] = []
    for line in section.group(2).splitlines():
        indent = len(line) - len(line.lstrip(" \t"))
        address = _ADDRESS.search(line)
        if line.strip() and indent == 0:
            break  # the section ends at the first unindented paragraph
        if 0 < indent < 4 and address:
            # "pipe to |/usr/bin/x addr": a delivery to a program, which the reason needs.
            piped = line.strip().lower().startswith("pipe to")
            blocks.append((address.group(0), [line.strip()] if piped else []))
        elif indent >= 4 and blocks:
            blocks[-1][1].append(line.strip())
    return [
        _plain_recipient(recipient, " ".join(lines), _host(" ".join(lines)), action)
        for recipient, lines in blocks
    ]


_EXCHANGE_RETURNED = re.compile(
    r"Remote Server (?:at ([\w.-]+)(?: \([^)]*\))? )?returned '([^']*)'", re.I
)


def _read_exchange(text: str) -> list[BouncedRecipient]:
    """Each "Remote Server returned '...'" line belongs to the address line just above it."""
    result: list[BouncedRecipient] = []
    last: str | None = None
    for line in text.splitlines():
        returned = _EXCHANGE_RETURNED.search(line)
        address = _ADDRESS.search(line)
        if returned and last:
            result.append(_plain_recipient(last, returned.group(2), returned.group(1)))
            last = None
        elif address:
            last = address.group(0)
    if result:
        return result
    listed = re.search(r"recipients or groups:(.*?)(?:Diagnostic information|\Z)", text, re.S)
    addresses = _ADDRESS.findall(listed.group(1)) if listed else []
    return [_plain_recipient(a, "") for a in dict.fromkeys(a.lower() for a in addresses)]


_GMAIL_FAILED = re.compile(
    r"(?:Your message wasn.t delivered to|There was a problem delivering your message to|"
    r"Delivery to the following recipients? failed permanently:)\s*<?(" + _ADDRESS.pattern + ")",
    re.I,
)
_GMAIL_DELAYED = re.compile(
    r"(?:There was a temporary problem delivering your message to|"
    r"Delivery to the following recipients? has been delayed:)\s*<?(" + _ADDRESS.pattern + ")",
    re.I,
)
# The server's words follow on the next lines, or on the same line in older Gmail bounces.
_GMAIL_RESPONSE = re.compile(
    r"(?:The response from the remote server was|The error that the other server returned was|"
    r"The response was):[ \t]*\n?(.+?)(?:\n[ \t]*\n|\Z)",
    re.S | re.I,
)
_GMAIL_DETAILS = re.compile(
    r"Technical details of (?:permanent|temporary) failure:\s*(.+?)(?:\n[ \t]*\n|\Z)", re.S | re.I
)
_GMAIL_HOST = re.compile(
    r"\bby ([\w-]+(?:\.[\w-]+)+)\.? \[|\[([\w-]+(?:\.[\w-]+)+)\.? [\d.:a-fA-F]+[:\]]"
)


def _read_gmail(text: str) -> list[BouncedRecipient]:
    failed = _GMAIL_FAILED.search(text)
    delayed = _GMAIL_DELAYED.search(text)
    found, action = (failed, "failed") if failed else (delayed, "delayed")
    if found is None:
        return []
    response = _first_group(_GMAIL_RESPONSE, text) or _first_group(_GMAIL_DETAILS, text) or ""
    host = _GMAIL_HOST.search(text)
    remote_mta = (host.group(1) or host.group(2)) if host else None
    return [_plain_recipient(found.group(1), response, remote_mta, action)]


@dataclass(frozen=True)
class _PlainFormat:
    name: str
    marker: re.Pattern[str]
    read: Callable[[str], list[BouncedRecipient]]
    reporting_mta: re.Pattern[str] | None


# Most specific first: an Office 365 text also contains phrases the Gmail reader knows.
_PLAIN_FORMATS = (
    _PlainFormat(
        "exchange",
        re.compile(r"Delivery has failed to these recipients or groups|Remote Server returned '"),
        _read_exchange,
        re.compile(r"Generating server:\s*([\w.-]+)"),
    ),
    _PlainFormat(
        "gmail",
        re.compile(
            r"Address not found|Your message wasn.t delivered to|problem delivering your message|"
            r"Delivery to the following recipients? (?:failed permanently|has been delayed)"
        ),
        _read_gmail,
        None,
    ),
    _PlainFormat(
        "yahoo",
        re.compile(r"Sorry, we were unable to deliver your message to the following address"),
        _read_yahoo,
        None,
    ),
    _PlainFormat(
        "postfix",
        re.compile(r"This is the mail system at host"),
        _read_postfix,
        re.compile(r"This is the mail system at host ([\w.-]+?)\.?\s"),
    ),
    _PlainFormat(
        "exim",
        re.compile(
            r"This message was created automatically by (?:mail delivery software|the SMTP relay)"
        ),
        _read_exim,
        re.compile(r"on the queue on ([\w.-]+?)\.?\s"),
    ),
    _PlainFormat(
        "qmail",
        re.compile(r"This is the qmail-send program at"),
        _read_qmail,
        re.compile(r"This is the qmail-send program at ([\w.-]+?)\.?\s"),
    ),
)


def _read_plain(msg: Message) -> tuple[str, list[BouncedRecipient], str | None] | None:
    """The first plain-text format whose marker and recipients are found in the bounce text."""
    text = _COPY_MARKER.split(_human_text(msg)[:_MAX_REPORT_TEXT], maxsplit=1)[0]
    for plain in _PLAIN_FORMATS:
        found = plain.read(text) if plain.marker.search(text) else []
        if found:
            return plain.name, found, _first_group(plain.reporting_mta, text)
    return None


# --- Amazon SES notifications ---------------------------------------------------------------


def _read_ses_notification(msg: Message) -> list[BouncedRecipient] | None:
    """An Amazon SES notification (JSON, by SNS e-mail): None when the mail is not one, the
    bounced recipients of a "Bounce" one, [] for deliveries and complaints."""
    if msg.is_multipart():
        return None
    text = _body_text(msg).strip()
    if not text.startswith("{") or "notificationType" not in text[:4000]:
        return None
    try:  # lines folded inside the JSON by the mail systems on the way
        document, _ = json.JSONDecoder().raw_decode(text.replace("\r", "").replace("\n", ""))
    except ValueError:
        return None
    document = _sns_message(document)
    if not isinstance(document, dict) or document.get("notificationType") != "Bounce":
        return []
    bounce = document.get("bounce")
    listed = bounce.get("bouncedRecipients") if isinstance(bounce, dict) else None
    result = []
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict):
            continue
        address = usable_address(str(entry.get("emailAddress") or ""))
        diagnostic = _strip_type(str(entry.get("diagnosticCode") or "")) or ""
        status = _status(str(entry.get("status") or "")) or _status(diagnostic)
        action = _action(str(entry.get("action") or ""), status)
        if address:
            code = _smtp_code(diagnostic)
            bounce_type, reason = _classify(action, status, code, diagnostic)
            result.append(
                BouncedRecipient(
                    address, action, status, bounce_type, _clip(diagnostic), None, code, reason
                )
            )
    return result


def _sns_message(document: object) -> object:
    """The SES notification an SNS e-mail subscription wraps, as a JSON string in its
    "Message"; the document itself when it is no such wrapper."""
    if not isinstance(document, dict) or document.get("Type") != "Notification":
        return document
    inner = document.get("Message")
    try:
        return json.loads(inner) if isinstance(inner, str) else document
    except ValueError:
        return document


# --- any other text ----------------------------------------------------------------------

_FIELD_LINE = re.compile(r"^[ \t]*(?:Final|Original)-Recipient[ \t]*:", re.I | re.M)
# Where the report says which recipient failed; the address follows.
_NAMED_RECIPIENT = re.compile(
    r"(?:RCPT TO:?|delivering your mail to|following (?:recipient|address)(?:e?s|\(e?s\))?:?|"
    r"could not be delivered to|delivery to|failed to|recipient:?|unknown user:?)"
    r"\s*<?(" + _ADDRESS.pattern + ")"
    # Sendmail's "554 <addr>... reason" and Exchange's "addr on <date>" lines.
    r"|^[ \t]*(?:[45]\d\d[ \t]+)?<?(" + _ADDRESS.pattern + r")>?(?:\.\.\.|[ \t]+on[ \t])",
    re.I | re.M,
)
_MAX_GENERIC_RECIPIENTS = 20


_MESSAGE_ID_FIELD = re.compile(
    r"(?:message-id|in-reply-to|references)\s*:\s*<?([^<>\s]+@[^<>\s]+?)>?(?:\s|$)", re.I
)


def _message_ids(msg: Message, text: str) -> frozenset[str]:
    """Message-IDs the bounce quotes: they look like addresses and are none."""
    found = {m.group(1).lower() for m in _MESSAGE_ID_FIELD.finditer(text)}
    _, original_id = _correlation(msg)
    for value in (original_id, _header(msg, "message-id"), _header(msg, "in-reply-to")):
        if value:
            found.add(value.strip().strip("<>").lower())
    return frozenset(found)


def _sent_by_mail_system(msg: Message) -> bool:
    """A mailer-daemon's From or a bounce's Subject: a bounce, whatever else it says."""
    return bool(
        _BOUNCE_SENDER.search(_header(msg, "from"))
        or _BOUNCE_SUBJECT.search(_header(msg, "subject"))
    )


def _report_text(msg: Message) -> str:
    return _COPY_MARKER.split(_human_text(msg)[:_MAX_REPORT_TEXT], maxsplit=1)[0]


def _read_inline_fields(msg: Message) -> list[BouncedRecipient]:
    """Delivery-status fields written into the text of the bounce rather than a part of
    their own (Amazon WorkMail, some gateways)."""
    text = _report_text(msg)
    if not _FIELD_LINE.search(text):
        return []
    found = (_dsn_recipient(fields) for fields in _field_blocks(text))
    return [recipient for recipient in found if recipient is not None]


def _senders(msg: Message) -> frozenset[str]:
    """Addresses that never failed: whoever sent the original, and the bounce's own ends."""
    values = [_header(msg, name) for name in ("from", "to", "reply-to", "sender")]
    try:
        original = _original_headers(msg)
    except Exception:  # a broken original leaves the bounce's own headers
        original = []
    names = ("from", "sender", "return-path", "reply-to")
    values += [value for name, value in original if name.strip().lower() in names]
    return frozenset(usable_address(a) for _, a in getaddresses(values) if usable_address(a))


def _original_recipients(msg: Message, senders: frozenset[str]) -> list[str]:
    try:
        original = _original_headers(msg)
    except Exception:  # a broken original names nobody
        return []
    values = [value for name, value in original if name.strip().lower() in ("to", "cc")]
    if not values:
        values = _quoted_original_recipients(msg)
    found = (usable_address(a) for _, a in getaddresses(values))
    return list(dict.fromkeys(a for a in found if a and a not in senders))


def _quoted_original_recipients(msg: Message) -> list[str]:
    """To and Cc of an original quoted in the text after the report ("Unsent message
    follows", "Message headers follow", ...)."""
    parts = _COPY_MARKER.split(_human_text(msg)[:_MAX_REPORT_TEXT], maxsplit=1)
    if len(parts) < 2:
        return []
    quoted = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
    headers = message_from_string(quoted.lstrip("\n")[:20_000], policy=policy.compat32)
    return [str(v) for name in ("to", "cc") for v in (headers.get_all(name) or [])]


def _read_generic(msg: Message, senders: frozenset[str]) -> list[BouncedRecipient]:
    """Any other bounce: the addresses its report names (not the sender's), each with the
    lines from its first mention on; when it names none, the returned original's To."""
    text = _report_text(msg)
    named = [usable_address(m.group(1) or m.group(2)) for m in _NAMED_RECIPIENT.finditer(text)]
    mentioned = [usable_address(a) for a in _ADDRESS.findall(text)]
    original = _original_recipients(msg, senders)
    ids = _message_ids(msg, text)
    # Exim and Google name the failed recipients in a header of the bounce.
    listed = [usable_address(a) for a in _header(msg, "x-failed-recipients").split(",")]
    candidates = [
        a
        for a in dict.fromkeys([a for a in listed if a] or named or mentioned)
        if a and a not in senders and a not in ids
    ]
    if original and not named:
        candidates = [a for a in candidates if a in original] or candidates
    if not candidates and _has_failure_words(text):
        candidates = original
    candidates = candidates[:_MAX_GENERIC_RECIPIENTS]
    lowered = text.lower()
    starts = sorted((max(lowered.find(a), 0), a) for a in candidates)
    result = []
    for index, (start, address) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        segment = text[start:end] if end > start else text[start:]
        if not _has_failure_words(segment):
            segment = text
        elif reason_from_text(segment) is None and _failure_status(segment) is None:
            # Neither words nor a status after the address: they may come before it
            # ("Mailbox is full: <a@b>", an error above the message details): its whole line,
            # or the whole text for the only recipient.
            line_start = text.rfind("\n", 0, start) + 1
            segment = text if len(starts) == 1 else text[line_start:end]
        rcpt = _plain_recipient(address, _diagnostic_lines(segment), None, _action_of(text))
        if address.endswith("@googlegroups.com") and rcpt.bounce_type is not None:
            # A Google group that refused the post: the sender may not post, the group exists.
            rcpt = replace(rcpt, reason=BounceReason.SENDER_REJECTED.value, bounce_type="soft")
        result.append(rcpt)
    return result


_FAILURE_WORDS = re.compile(
    r"\b[45]\d\d\b|\b[45]\.\d{1,3}\.\d{1,3}\b|fail|error|unknown|not |unable|could ?n.t|doesn.t|"
    r"can.t|denied|refused|rejected|invalid|exceeded|full|expired|timed? ?out",
    re.I,
)
_DELAY_WORDS = re.compile(
    r"will (?:be retried|continue trying|keep trying)|still trying|has been delayed|"
    r"this is (?:only )?a warning|delivery (?:is )?delayed",
    re.I,
)


def _has_failure_words(text: str) -> bool:
    return bool(_FAILURE_WORDS.search(text))


def _action_of(text: str) -> str:
    return "delayed" if _DELAY_WORDS.search(text) else "failed"


def _diagnostic_lines(segment: str) -> str:
    lines = [line.strip() for line in segment.splitlines() if line.strip()]
    return " ".join(lines)[:_MAX_DIAGNOSTIC]


def usable_address(value: str) -> str:
    """The mailbox a recipient field names, lowercased; "" when it names none.

    Not addresses: pipes and paths (``|/usr/bin/x``, ``/var/spool/x``), bare or routed
    domains (``@mx.example.org``), a domain without a dot. A quoted local part keeps its
    quotes: ``"jane doe"@example.net``.
    """
    value = _TYPE_PREFIX.sub("", value or "", count=1).strip()
    if "<" in value and ">" in value.split("<", 1)[1]:
        value = value.split("<", 1)[1].split(">", 1)[0].strip()
    if value.startswith('"'):
        closing = value.find('"', 1)
        if closing < 0:
            return ""
        local, rest = value[: closing + 1], value[closing + 1 :]
        if not rest.startswith("@"):
            return ""
        domain = rest[1:].split()[0] if rest[1:].split() else ""
    else:
        token = value.split()[0] if value.split() else ""
        token = token.strip("'\"").rstrip(".,;:")
        local, _, domain = token.rpartition("@")
    domain = domain.rstrip(".,;:>)").lower()
    if not local or local[0] in "|/" or "@" in local.strip('"') or ":" in local.strip('"'):
        return ""
    if "." not in domain or not _DOMAIN.match(domain):
        return ""
    return f"{local.lower()}@{domain}"


_DOMAIN = re.compile(r"^(?:[\w-]+\.)+[\w-]+$")


# --- fallback ----------------------------------------------------------------------------


def _for_flufl(raw: bytes) -> Message:
    """The head of the mail as flufl.bounce can take it: ASCII only, with a From that parses.

    Its detectors call str methods on headers, decode parts by their declared charset and index
    the parsed From; on compat32's Header objects and surrogates for raw 8-bit bytes, or on a
    missing From, they raise (and log). Non-ASCII becomes "?": they look for English text.
    """
    head = raw[:_MAX_FLUFL_BYTES].decode("ascii", "replace").replace("\ufffd", "?")
    msg = message_from_string(head.replace("\0", ""), policy=policy.compat32)
    if not getaddresses([str(msg.get("from", ""))]):
        del msg["from"]
        msg["From"] = "<>"
    return msg


def _read_flufl(raw: bytes) -> list[BouncedRecipient]:
    """Formats we have no reader for: flufl.bounce knows a dozen more, addresses only."""
    try:
        temporary, permanent = all_failures(_for_flufl(raw))
    except Exception:  # its heuristics are not written for hostile input
        return []
    hard = sorted({usable_address(a.decode("utf-8", "replace")) for a in permanent} - {""})
    soft = sorted(
        {usable_address(a.decode("utf-8", "replace")) for a in temporary} - {""} - set(hard)
    )
    # flufl.bounce names addresses only: without the server's words the reason is unknown,
    # and an unknown reason never suppresses at once.
    unknown = BounceReason.UNDETERMINED.value
    return [
        BouncedRecipient(a, "failed", None, "soft", None, None, None, unknown) for a in hard
    ] + [BouncedRecipient(a, "delayed", None, "soft", None, None, None, unknown) for a in soft]
