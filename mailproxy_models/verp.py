"""VERP return paths: ``bounces+m<message pk>-<token>@domain`` names the message in the envelope.

A bounce goes to the envelope sender, so its recipient address alone says which message
bounced, even when the reporting server returns none of the original's headers.

Message pks count up, so the pk alone could be guessed: anyone could then send a made-up
bounce naming a message and put its recipient on the suppression list. The random token,
stored with the message, makes such an address impossible to guess. Addresses without a
token still name messages stored before tokens existed (their token is empty).
"""

from __future__ import annotations

import base64
import os
import re
from typing import NamedTuple

_TAG = re.compile(
    r"^(?P<local>[^+@\s]+)\+m(?P<pk>\d{1,19})(?:-(?P<token>[a-z2-7]{8}))?@(?P<domain>[^@\s]+)$",
    re.IGNORECASE,
)


class VerpTag(NamedTuple):
    message_pk: int
    token: str | None  # lowercase: some servers change the case of local parts


def new_verp_token() -> str:
    """40 random bits in 8 lowercase base32 letters, valid in any local part."""
    return base64.b32encode(os.urandom(5)).decode("ascii").lower()


def verp_address(bounce_address: str, message_pk: int, token: str | None) -> str:
    """``bounces@example.com``, 42 and ``k7f3q2xa`` give ``bounces+m42-k7f3q2xa@example.com``."""
    local, _, domain = bounce_address.rpartition("@")
    suffix = f"-{token}" if token else ""
    return f"{local}+m{message_pk}{suffix}@{domain}"


def verp_tag(address: str) -> VerpTag | None:
    """The message pk and token a VERP address carries, None when it is not one."""
    match = _TAG.match(address.strip().strip("<>"))
    if match is None:
        return None
    token = match["token"]
    return VerpTag(int(match["pk"]), token.lower() if token else None)
