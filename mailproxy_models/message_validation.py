"""Validation of one submitted message: the rules an API client can break, with readable reasons.

``normalize_message`` either returns the payload in its stored form or raises
``InvalidInput`` whose message names the field and what to do about it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email

from .errors import InvalidInput

PRIORITIES = {0: "immediate", 1: "high", 2: "medium", 3: "low"}
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
FORBIDDEN_CHARS = re.compile(r"[\r\n\x00]")
MD5_MARKER = re.compile(r"\{MD5:([0-9a-fA-F]{32})\}")
MAX_ID_LENGTH = 255
MAX_HEADER_VALUE = 998  # RFC 5322 line length limit


@dataclass(frozen=True)
class MessageLimits:
    max_recipients: int
    max_headers: int


def normalize_message(raw: Any, limits: MessageLimits, default_priority: int) -> dict[str, Any]:
    """Return the stored form of one message, or raise InvalidInput naming the field."""
    if not isinstance(raw, dict):
        raise InvalidInput("message: each message must be a JSON object")
    msg_id = _required_text(raw, "id", MAX_ID_LENGTH)
    sender = _address_field(raw, "from", required=True)
    to = _address_list(raw, "to", required=True)
    cc = _address_list(raw, "cc")
    bcc = _address_list(raw, "bcc")
    if len(to) + len(cc) + len(bcc) > limits.max_recipients:
        raise InvalidInput(
            f"recipients: at most {limits.max_recipients} recipients (to + cc + bcc) per message"
        )
    subject = raw.get("subject")
    if not isinstance(subject, str):
        raise InvalidInput("subject: required, a string")
    _no_forbidden_chars("subject", subject)
    body = raw.get("body", "") or ""
    if not isinstance(body, str):
        raise InvalidInput("body: must be a string")
    content_type = raw.get("content_type") or "plain"
    if content_type not in CONTENT_TYPES:
        raise InvalidInput("content_type: must be 'plain' or 'html'")
    priority = raw.get("priority", default_priority)
    if priority is None:
        priority = default_priority
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise InvalidInput("priority: must be 0 (immediate), 1 (high), 2 (medium) or 3 (low)")
    return {
        "id": msg_id,
        "tenant_id": _optional_text(raw, "tenant_id", 64),
        "account_id": _optional_text(raw, "account_id", 64),
        "from": sender,
        "to": to,
        "cc": cc,
        "bcc": bcc,
        "reply_to": _address_field(raw, "reply_to"),
        "return_path": _address_field(raw, "return_path", bare=True),
        "subject": subject,
        "body": body,
        "content_type": content_type,
        "headers": _headers(raw.get("headers"), limits.max_headers),
        "message_id": _optional_text(raw, "message_id", MAX_HEADER_VALUE),
        "priority": priority,
        "deferred_ts": _optional_timestamp(raw, "deferred_ts"),
        "batch_code": _optional_text(raw, "batch_code", 64),
        "attachments": [_attachment(i, a) for i, a in enumerate(_list(raw, "attachments"))],
    }


def _no_forbidden_chars(field: str, value: str) -> None:
    if FORBIDDEN_CHARS.search(value):
        raise InvalidInput(
            f"{field}: must not contain CR, LF or NUL characters (header injection is refused)"
        )


def _required_text(raw: dict[str, Any], field: str, max_length: int) -> str:
    value = raw.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: required, a non-empty string")
    if len(value) > max_length:
        raise InvalidInput(f"{field}: at most {max_length} characters")
    _no_forbidden_chars(field, value)
    return value


def _optional_text(raw: dict[str, Any], field: str, max_length: int) -> str | None:
    if raw.get(field) in (None, ""):
        return None
    return _required_text(raw, field, max_length)


def _optional_timestamp(raw: dict[str, Any], field: str) -> float | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInput(f"{field}: must be a Unix timestamp in seconds")
    return float(value)


def _list(raw: dict[str, Any], field: str) -> list[Any]:
    value = raw.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{field}: must be a list")
    return value


# The common case, a plain ASCII dot-atom address (RFC 5322 3.4.1) with an LDH domain of at
# least two labels, is checked by this expression; anything else (quoted local parts,
# internationalized addresses, odd forms) goes to email-validator, which also words the error.
_PLAIN_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def _check_address(field: str, address: str) -> None:
    if len(address) <= 254 and len(address.partition("@")[0]) <= 64:
        if _PLAIN_ADDRESS.match(address):
            return
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{field}: '{address}' is not a valid email address ({exc})") from exc


def _address_field(
    raw: dict[str, Any], field: str, required: bool = False, bare: bool = False
) -> str | None:
    """One address, ``Name <addr>`` or bare; returned as given after validation."""
    value = raw.get(field)
    if value in (None, ""):
        if required:
            raise InvalidInput(f"{field}: required, an email address")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string holding one email address")
    problem = _single_address_problem(value, bare)
    if problem:
        raise InvalidInput(f"{field}: {problem}")
    return value.strip()


@lru_cache(maxsize=4096)
def _single_address_problem(value: str, bare: bool) -> str | None:
    """Why ``value`` is not one valid address, or None. Cached: a batch usually repeats its
    sender, and parsing display names is the slow part of validating a batch."""
    try:
        _no_forbidden_chars("address", value)
        name, address = parseaddr(value)
        if not address or (bare and name):
            return f"'{value}' is not a valid email address"
        _check_address("address", address)
    except InvalidInput as exc:
        return str(exc).removeprefix("address: ")
    return None


def _address_list(raw: dict[str, Any], field: str, required: bool = False) -> list[str]:
    """A list of addresses, given as a JSON list or a comma-separated string."""
    value = raw.get(field)
    if value in (None, "", []):
        if required:
            raise InvalidInput(f"{field}: required, at least one email address")
        return []
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        raise InvalidInput(f"{field}: must be a list of addresses or a comma-separated string")
    result: list[str] = []
    for item in items:
        _no_forbidden_chars(field, item)
        if _PLAIN_ADDRESS.match(item):  # a bare address: nothing to parse
            _check_address(field, item)
            result.append(item)
            continue
        for name, address in getaddresses([item]):
            if not address:
                raise InvalidInput(f"{field}: '{item}' is not a valid email address")
            _check_address(field, address)
            result.append(f"{name} <{address}>" if name else address)
    return result


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
        _no_forbidden_chars(f"headers.{name}", text)
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


def _attachment(index: int, raw: Any) -> dict[str, Any]:
    """The shape of one attachment. Only ``base64`` content is here to check; the other
    sources are fetched by the worker when the message is sent, never in the API request."""
    field = f"attachments[{index}]"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{field}: must be an object with filename and storage_path")
    filename = _required_text(raw, "filename", 255)
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
    auth = {"method": value.get("method", "none")}
    for key in ("user", "password", "token"):
        item = value.get(key)
        if item is not None:
            if not isinstance(item, str):
                raise InvalidInput(f"{field}.auth.{key}: must be a string")
            auth[key] = item
    return auth
