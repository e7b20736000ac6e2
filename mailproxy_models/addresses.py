"""A message's addresses (mailboxes: a display name and an address each): parsed once when a
message is accepted, stored as parts, and read back from the stored form for the envelope and
the header fields.

A message's ``from``, ``reply_to`` and ``return_path`` are stored as ``{"name", "address"}``
and ``to``, ``cc``, ``bcc`` as lists of them, so nothing downstream ever parses an address
again: a display name such as ``"evil@example.net, x"`` stays a name. Messages stored before
this form hold plain strings (``"Name <addr>"`` or ``addr``); ``stored_mailbox`` reads both.
"""

from __future__ import annotations

import re
from email import errors as email_errors
from email._header_value_parser import get_mailbox  # the parser of email.headerregistry
from functools import lru_cache
from typing import Any, TypedDict

from email_validator import EmailNotValidError, validate_email

from .errors import InvalidInput


class Mailbox(TypedDict):
    name: str
    address: str


# Characters no header-bound value may hold: C0 controls except TAB (CR, LF and NUL
# included), DEL, C1 controls, and the Unicode line and paragraph separators (which some
# readers treat as line ends).
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")

# The common case, a plain ASCII dot-atom address (RFC 5322 3.4.1) with an LDH domain of at
# least two labels, is checked by this expression; anything else (quoted local parts,
# internationalized addresses, odd forms) goes to email-validator, which also words the error.
PLAIN_ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
# Defects of the header parser that still leave one unambiguous mailbox: an internationalized
# local part (RFC 6532) and obsolete phrases such as ``John Q. Public``.
_HARMLESS_DEFECTS = (email_errors.NonASCIILocalPartDefect, email_errors.ObsoleteHeaderDefect)


def control_character(value: str) -> str | None:
    """The first control character of ``value`` as ``U+XXXX``, or None."""
    found = CONTROL_CHARS.search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def check_address(address: str) -> str | None:
    """Why ``address`` is not a valid addr-spec (internationalized allowed), or None."""
    if len(address) <= 254 and len(address.partition("@")[0]) <= 64:
        if PLAIN_ADDRESS.match(address):
            return None
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        return f"'{address}' is not a valid email address ({exc})"
    return None


def parse_mailbox(text: str) -> Mailbox:
    """Exactly one mailbox (RFC 5322 ``name-addr`` or ``addr-spec``), or InvalidInput saying
    why (the caller adds the field name)."""
    problem_char = control_character(text)
    if problem_char:
        raise InvalidInput(f"{text!r} contains the control character {problem_char}")
    stripped = text.strip()
    if PLAIN_ADDRESS.match(stripped) and len(stripped) <= 254:
        return {"name": "", "address": stripped}
    simple = _simple_name_addr(stripped)
    if simple is not None:
        return simple
    name, address, problem = _parse_one(stripped)
    if problem:
        raise InvalidInput(problem)
    return {"name": name, "address": address}


# The usual named forms, ``Name Words <addr>`` (ASCII atoms) and ``"Any name" <addr>`` (a
# quoted string without escapes), read without the full parser, which costs about a
# millisecond a mailbox. Anything else, or text that may hold an RFC 2047 encoded word, goes
# to the parser; both give the same result for these forms (tested).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_NAME_ADDR = re.compile(
    rf'^(?:"(?P<quoted>[^"\\]*)"|(?P<atoms>{_ATOM}(?: +{_ATOM})*)) *<(?P<address>[^<>\s]+)>$'
)


def _simple_name_addr(text: str) -> Mailbox | None:
    if "=?" in text:
        return None
    match = _SIMPLE_NAME_ADDR.match(text)
    if not match:
        return None
    address = match.group("address")
    if len(address) > 254 or not PLAIN_ADDRESS.match(address):
        return None
    quoted = match.group("quoted")
    name = quoted if quoted is not None else " ".join(match.group("atoms").split())
    return {"name": name, "address": address}


@lru_cache(maxsize=4096)
def _parse_one(text: str) -> tuple[str, str, str | None]:
    """(name, address, problem). Cached: a batch usually repeats its sender, and parsing a
    display name is the slow part of validating a batch."""
    try:
        mailbox, rest = _next_mailbox(text)
    except InvalidInput as exc:
        return "", "", str(exc)
    if rest.strip():
        return "", "", f"'{text}' is not one email address (give exactly one mailbox per entry)"
    return mailbox["name"], mailbox["address"], None


def parse_mailbox_list(text: str) -> list[Mailbox]:
    """An RFC 5322 address list of mailboxes separated by commas (no groups, no empty
    elements), or InvalidInput saying why."""
    problem_char = control_character(text)
    if problem_char:
        raise InvalidInput(f"{text!r} contains the control character {problem_char}")
    mailboxes: list[Mailbox] = []
    rest = text
    while True:
        mailbox, rest = _next_mailbox(rest)
        mailboxes.append(mailbox)
        rest = rest.strip()
        if not rest:
            return mailboxes
        if not rest.startswith(","):
            raise InvalidInput(f"'{text}' is not a list of email addresses separated by commas")
        rest = rest[1:]


def _next_mailbox(text: str) -> tuple[Mailbox, str]:
    """The mailbox at the start of ``text`` and what follows it."""
    refused = f"'{text.strip()}' is not an email address"
    if not text.strip():
        raise InvalidInput("an empty entry is not an email address")
    try:
        token, rest = get_mailbox(text)
        defects = [d for d in token.all_defects if not isinstance(d, _HARMLESS_DEFECTS)]
        address = token.addr_spec or ""
        name = token.display_name or ""
    # The parser is lenient and meant for headers already received: on some malformed input
    # it raises more than HeaderParseError. Whatever it cannot read is not one mailbox.
    except (email_errors.HeaderParseError, IndexError, ValueError, AttributeError, TypeError):
        raise InvalidInput(refused) from None
    if defects or not address or address.startswith("<"):
        raise InvalidInput(refused)
    if control_character(name):  # an RFC 2047 encoded word may decode to one
        raise InvalidInput(f"'{text.strip()}': the display name contains a control character")
    problem = check_address(address)
    if problem:
        raise InvalidInput(problem)
    return {"name": name, "address": address}, rest


def stored_mailbox(value: Any) -> Mailbox:
    """The mailbox of a stored payload field, in either stored form: ``{"name", "address"}``
    or, for messages stored by earlier versions, the string ``"Name <addr>"`` or ``addr``.

    Those strings were written one mailbox each (the name unquoted), so the address is what
    the last angle brackets hold: a comma or an ``@`` in the name never adds a recipient."""
    if isinstance(value, dict):
        return {"name": str(value.get("name") or ""), "address": str(value["address"])}
    text = str(value).strip()
    if text.endswith(">") and "<" in text:
        name, _, address = text[:-1].rpartition("<")
        return {"name": name.strip().strip('"'), "address": address.strip()}
    return {"name": "", "address": text}


def stored_mailboxes(values: Any) -> list[Mailbox]:
    return [stored_mailbox(value) for value in values or []]


def envelope_recipients(payload: dict[str, Any]) -> list[str]:
    """RCPT TO addresses of a stored message: to, cc and bcc in order, each once (compared
    case-insensitively). Read from the stored parts, never parsed from a header."""
    unique: dict[str, str] = {}
    for field in ("to", "cc", "bcc"):
        for mailbox in stored_mailboxes(payload.get(field)):
            if mailbox["address"]:
                unique.setdefault(mailbox["address"].lower(), mailbox["address"])
    return list(unique.values())


def envelope_sender(payload: dict[str, Any]) -> str:
    """MAIL FROM of a stored message: its return_path, or else its from address."""
    return stored_mailbox(payload.get("return_path") or payload["from"])["address"]
