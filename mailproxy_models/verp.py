"""VERP return paths: ``bounces+<message pk>@domain`` names the message in the envelope.

A bounce goes to the envelope sender, so its recipient address alone says which message
bounced, even when the reporting server returns none of the original's headers.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"^(?P<local>[^+@\s]+)\+m(?P<pk>\d{1,19})@(?P<domain>[^@\s]+)$", re.IGNORECASE)


def verp_address(bounce_address: str, message_pk: int) -> str:
    """``bounces@example.com`` and 42 give ``bounces+m42@example.com``."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+m{message_pk}@{domain}"


def verp_message_pk(address: str) -> int | None:
    """The message pk a VERP address carries, None when it is not one."""
    match = _TAG.match(address.strip().strip("<>"))
    return int(match["pk"]) if match else None
