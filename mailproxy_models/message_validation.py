"""Validation of one submitted message: the rules an API client can break, with readable reasons.

``normalize_message`` either returns the payload in its stored form or raises
``InvalidInput`` whose message names the field and what to do about it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from .addresses import (
    Mailbox,
    control_character,
    parse_mailbox,
    parse_mailbox_list,
)
from .errors import InvalidInput

PRIORITIES = {0: "immediate", 1: "high", 2: "medium", 3: "low"}
PRIORITY_NUMBERS = {name: number for number, name in PRIORITIES.items()}
CONTENT_TYPES = ("plain", "html")
FETCH_MODES_KNOWN = ("base64", "filesystem", "http_url", "endpoint")
# Headers that the message's own fields set; a custom header may not override them.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "X-Mailproxy-ID",
        "X-Genro-Mail-ID",
        "Return-Path",
        "Sender",
    )
)
HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII except ':'
MD5_MARKER = re.compile(r"\{MD5:([0-9a-fA-F]{32})\}")
MAX_ID_LENGTH = 255
# A message id is a path segment of GET /message/{id}: no '/', not '.' or '..', no controls.
MESSAGE_ID = re.compile(r"^(?!\.\.?$)[^/\x00-\x1f\x7f-\x9f\u2028\u2029]{1,255}$")
MESSAGE_ID_PATTERN = MESSAGE_ID.pattern
MAX_HEADER_VALUE = 998  # RFC 5322 line length limit
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
# RFC 5322 3.6.4 msg-id: "<" id-left "@" id-right ">", id-left a dot-atom-text, id-right a
# dot-atom-text or a no-fold-literal.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
MSG_ID = re.compile(rf"^<{_DOT_ATOM}@(?:{_DOT_ATOM}|\[[!-Z^-~]*\])>$")
MAX_MSG_ID = 250
# Every key a message may have; anything else is refused by name.
MESSAGE_KEYS = frozenset(
    (
        "id",
        "tenant_id",
        "account_id",
        "from",
        "to",
        "cc",
        "bcc",
        "reply_to",
        "return_path",
        "subject",
        "body",
        "content_type",
        "headers",
        "message_id",
        "priority",
        "deferred_ts",
        "batch_code",
        "attachments",
    )
)
ATTACHMENT_KEYS = frozenset(
    ("filename", "storage_path", "fetch_mode", "mime_type", "content_md5", "content_id", "auth")
)
AUTH_KEYS = frozenset(("method", "user", "password", "token"))
# Keys that clients of other mail proxies send, with what to use here instead.
KEY_HINTS = {
    "account": "use 'account_id'",
    "tenant": "use 'tenant_id'",
    "sender": "use 'from'",
    "from_address": "use 'from'",
    "is_pec": "PEC is a property of the account: set 'is_pec' on the account (POST /account)",
    "html": "use 'content_type': 'html'",
}
ATTACHMENT_MAX_BYTES = 30 * 1024 * 1024


@dataclass(frozen=True)
class MessageLimits:
    max_recipients: int
    max_headers: int
    # Largest attachment content (the worker refuses a bigger one of any source).
    max_attachment_bytes: int = ATTACHMENT_MAX_BYTES


def normalize_message(raw: Any, limits: MessageLimits, default_priority: int) -> dict[str, Any]:
    """Return the stored form of one message, or raise InvalidInput naming the field."""
    if not isinstance(raw, dict):
        raise InvalidInput("message: each message must be a JSON object")
    _no_unknown_keys("message", raw, MESSAGE_KEYS)
    msg_id = _message_id(raw)
    sender = _mailbox_field(raw, "from", required=True)
    to = _mailbox_list(raw, "to", required=True)
    cc = _mailbox_list(raw, "cc")
    bcc = _mailbox_list(raw, "bcc")
    if len(to) + len(cc) + len(bcc) > limits.max_recipients:
        raise InvalidInput(
            f"recipients: at most {limits.max_recipients} recipients (to + cc + bcc) per message"
        )
    subject = raw.get("subject")
    if not isinstance(subject, str):
        raise InvalidInput("subject: required, a string")
    _no_control_chars("subject", subject)
    body = raw.get("body", "") or ""
    if not isinstance(body, str):
        raise InvalidInput("body: must be a string")
    if "\x00" in body:
        raise InvalidInput("body: must not contain NUL characters (U+0000)")
    content_type = raw.get("content_type") or "plain"
    if content_type not in CONTENT_TYPES:
        raise InvalidInput("content_type: must be 'plain' or 'html'")
    return {
        "id": msg_id,
        "tenant_id": _optional_text(raw, "tenant_id", 64),
        "account_id": _optional_text(raw, "account_id", 64),
        "from": sender,
        "to": to,
        "cc": cc,
        "bcc": bcc,
        "reply_to": _mailbox_field(raw, "reply_to"),
        "return_path": _mailbox_field(raw, "return_path", bare=True),
        "subject": subject,
        "body": body,
        "content_type": content_type,
        "headers": _headers(raw.get("headers"), limits.max_headers),
        "message_id": _msg_id(raw),
        "priority": priority_number(raw.get("priority"), default_priority),
        "deferred_ts": _optional_timestamp(raw, "deferred_ts"),
        "batch_code": _optional_text(raw, "batch_code", 64),
        "attachments": [_attachment(i, a, limits) for i, a in enumerate(_list(raw, "attachments"))],
    }


def priority_number(value: Any, default: int) -> int:
    """0-3 or its name (immediate, high, medium, low), as the number; None is the default."""
    if value is None:
        return default
    if isinstance(value, str) and value.lower() in PRIORITY_NUMBERS:
        return PRIORITY_NUMBERS[value.lower()]
    if isinstance(value, bool) or not isinstance(value, int) or value not in PRIORITIES:
        raise InvalidInput(
            "priority: must be 0 (or 'immediate'), 1 ('high'), 2 ('medium') or 3 ('low')"
        )
    return value


def _no_unknown_keys(where: str, raw: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(str(key) for key in raw if key not in known)
    if not unknown:
        return
    hints = [f"'{key}': {KEY_HINTS[key]}" for key in unknown if key in KEY_HINTS]
    text = f"{where}: unknown field(s) {', '.join(repr(k) for k in unknown)}"
    if hints:
        text += f" ({'; '.join(hints)})"
    raise InvalidInput(text)


def _no_control_chars(field: str, value: str) -> None:
    found = control_character(value)
    if found:
        raise InvalidInput(
            f"{field}: must not contain control characters (found {found}); only TAB is "
            "allowed, and CR/LF never (header injection is refused)"
        )


def _message_id(raw: dict[str, Any]) -> str:
    msg_id = _required_text(raw, "id", MAX_ID_LENGTH)
    if not MESSAGE_ID.match(msg_id):
        raise InvalidInput(
            f"id: '{msg_id}' is not a usable message id: it must not contain '/' or control "
            "characters and must not be '.' or '..' (it is a path segment of /message/{id})"
        )
    return msg_id


def _msg_id(raw: dict[str, Any]) -> str | None:
    """The Message-ID header the client chose: an RFC 5322 msg-id, ``<left@right>``; given
    without the angle brackets, they are added."""
    value = _optional_text(raw, "message_id", MAX_MSG_ID)
    if value is None:
        return None
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if len(value) > MAX_MSG_ID or not MSG_ID.match(value):
        raise InvalidInput(
            f"message_id: '{raw.get('message_id')}' is not a valid Message-ID: it must be "
            f"<left@right> (RFC 5322 msg-id, dot-atoms of printable ASCII), at most "
            f"{MAX_MSG_ID} characters"
        )
    return value


def _required_text(raw: dict[str, Any], field: str, max_length: int) -> str:
    value = raw.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: required, a non-empty string")
    if len(value) > max_length:
        raise InvalidInput(f"{field}: at most {max_length} characters")
    _no_control_chars(field, value)
    return value


def _optional_text(raw: dict[str, Any], field: str, max_length: int) -> str | None:
    if raw.get(field) in (None, ""):
        return None
    return _required_text(raw, field, max_length)


def _optional_timestamp(raw: dict[str, Any], field: str) -> float | None:
    value = raw.get(field)
    if value is None:
        return None
    # Finite and before year 10000: float() of a huge integer would overflow, and NaN or
    # Infinity (which some JSON readers accept) would never come due.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_TIMESTAMP
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise InvalidInput(
            f"{field}: must be a Unix timestamp in seconds, from 0 to {MAX_TIMESTAMP}"
        )
    return float(value)


def _list(raw: dict[str, Any], field: str) -> list[Any]:
    value = raw.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{field}: must be a list")
    return value


def _mailbox(field: str, text: str) -> Mailbox:
    try:
        return parse_mailbox(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{field}: {exc}") from exc


def _mailbox_field(
    raw: dict[str, Any], field: str, required: bool = False, bare: bool = False
) -> Mailbox | None:
    """Exactly one mailbox, ``Name <addr>`` or a bare address (``bare``: no name)."""
    value = raw.get(field)
    if value in (None, ""):
        if required:
            raise InvalidInput(f"{field}: required, an email address")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string holding one email address")
    mailbox = _mailbox(field, value)
    if bare and mailbox["name"]:
        raise InvalidInput(f"{field}: '{value}' must be an address alone, without a name")
    return mailbox


def _mailbox_list(raw: dict[str, Any], field: str, required: bool = False) -> list[Mailbox]:
    """A JSON list with one mailbox per entry, or a string holding one mailbox or plain
    addresses separated by commas."""
    value = raw.get(field)
    if value in (None, "", []):
        if required:
            raise InvalidInput(f"{field}: required, at least one email address")
        return []
    if isinstance(value, str):
        return _mailbox_string(field, value)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{field}: must be a list of addresses or a comma-separated string")
    return [_mailbox(f"{field}[{index}]", item) for index, item in enumerate(value)]


def _mailbox_string(field: str, value: str) -> list[Mailbox]:
    """A string is an RFC 5322 address list: ``"a@x.org, Bob <b@y.org>"`` is two mailboxes,
    ``"\\"Smith, John\\" <j@x.org>"`` is one."""
    try:
        return parse_mailbox_list(value)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{field}: {exc}; give a list of addresses, or a string of addresses separated by "
            "commas (a name holding a comma or an @ in double quotes)"
        ) from exc


def _headers(value: Any, max_headers: int) -> dict[str, str]:
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("headers: must be an object of header name to string value")
    if len(value) > max_headers:
        raise InvalidInput(f"headers: at most {max_headers} custom headers")
    headers: dict[str, str] = {}
    for name, header_value in value.items():
        if not HEADER_NAME.match(name):
            raise InvalidInput(f"headers: '{name!r}' is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidInput(f"headers: '{name}' is set by mailproxy; use the message field")
        if not isinstance(header_value, str | int | float) or isinstance(header_value, bool):
            raise InvalidInput(f"headers: value of '{name}' must be a string")
        text = str(header_value)
        _no_control_chars(f"headers.{name}", text)
        if len(text) > MAX_HEADER_VALUE:
            raise InvalidInput(f"headers.{name}: at most {MAX_HEADER_VALUE} characters")
        headers[name] = text
    return headers


def infer_fetch_mode(storage_path: str) -> str:
    """The API's rule: base64: prefix, http(s) URL, absolute path, anything else an endpoint."""
    if storage_path.startswith("base64:"):
        return "base64"
    if storage_path.startswith(("http://", "https://")):
        return "http_url"
    if storage_path.startswith("/"):
        return "filesystem"
    return "endpoint"


AUTH_METHODS = ("none", "basic", "bearer")
CONTENT_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]{1,250}$")


def _attachment(index: int, raw: Any, limits: MessageLimits) -> dict[str, Any]:
    """The shape of one attachment. Only ``base64`` content is here to check; the other
    sources are fetched by the worker when the message is sent, never in the API request."""
    field = f"attachments[{index}]"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{field}: must be an object with filename and storage_path")
    _no_unknown_keys(field, raw, ATTACHMENT_KEYS)
    try:
        filename = _required_text(raw, "filename", 255)
    except InvalidInput as exc:
        raise InvalidInput(f"{field}.{exc}") from exc
    storage_path = raw.get("storage_path")
    if not isinstance(storage_path, str) or not storage_path:
        raise InvalidInput(f"{field}.storage_path: required, a non-empty string")
    if "\x00" in storage_path:
        raise InvalidInput(f"{field}.storage_path: must not contain NUL characters")
    fetch_mode = raw.get("fetch_mode") or infer_fetch_mode(storage_path)
    if fetch_mode not in FETCH_MODES_KNOWN:
        raise InvalidInput(f"{field}.fetch_mode: must be one of {', '.join(FETCH_MODES_KNOWN)}")
    marker = MD5_MARKER.search(filename)
    declared_md5 = raw.get("content_md5") or (marker.group(1) if marker else None)
    if declared_md5 is not None and (
        not isinstance(declared_md5, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", declared_md5)
    ):
        raise InvalidInput(f"{field}.content_md5: must be 32 hexadecimal digits")
    declared_md5 = declared_md5.lower() if declared_md5 else None
    clean_name = MD5_MARKER.sub("", filename).strip()
    if not clean_name or "/" in clean_name or "\\" in clean_name:
        raise InvalidInput(f"{field}.filename: must be a file name without a path")
    if fetch_mode == "base64":
        storage_path = storage_path.removeprefix("base64:")
        try:
            content = base64.b64decode(storage_path, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{field}.storage_path: not valid base64 content") from exc
        if len(content) > limits.max_attachment_bytes:
            raise InvalidInput(
                f"{field}.storage_path: the attachment is {len(content)} bytes, the limit is "
                f"{limits.max_attachment_bytes} bytes ({_mib(limits.max_attachment_bytes)})"
            )
        actual_md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
        if declared_md5 and declared_md5 != actual_md5:
            raise InvalidInput(f"{field}: content does not match its declared MD5 {declared_md5}")
        declared_md5 = actual_md5
    elif fetch_mode == "http_url":
        if not re.match(r"^https?://[^/?#\s]+", storage_path, re.IGNORECASE):
            raise InvalidInput(f"{field}.storage_path: an http_url must be an http(s) URL")
    mime_type = raw.get("mime_type")
    if mime_type is not None and (
        not isinstance(mime_type, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", mime_type)
    ):
        raise InvalidInput(f"{field}.mime_type: must look like 'type/subtype'")
    content_id = raw.get("content_id")
    if content_id is not None and (
        not isinstance(content_id, str) or not CONTENT_ID.fullmatch(content_id.strip("<>"))
    ):
        raise InvalidInput(f"{field}.content_id: letters, digits and @._- only, no spaces")
    stored = {
        "filename": clean_name,
        "fetch_mode": fetch_mode,
        "storage_path": storage_path,
        "mime_type": mime_type,
        "content_md5": declared_md5,
    }
    if content_id:
        stored["content_id"] = content_id.strip("<>")
    auth = _attachment_auth(field, raw.get("auth"))
    if auth is not None:
        stored["auth"] = auth
    return stored


def _attachment_auth(field: str, value: Any) -> dict[str, Any] | None:
    """Per-attachment credentials for ``endpoint`` and ``http_url`` fetches."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("method", "none") not in AUTH_METHODS:
        raise InvalidInput(f"{field}.auth: must be {{'method': 'none'|'basic'|'bearer', ...}}")
    _no_unknown_keys(f"{field}.auth", value, AUTH_KEYS)
    auth = {"method": value.get("method", "none")}
    for key in ("user", "password", "token"):
        item = value.get(key)
        if item is not None:
            if not isinstance(item, str):
                raise InvalidInput(f"{field}.auth.{key}: must be a string")
            auth[key] = item
    return auth


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"
