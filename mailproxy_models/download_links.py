"""Signed, expiring download links of the ``local`` storage backend.

The worker signs ``(key, expiry)`` with HMAC-SHA256 under ``download_link_secret`` (or, when
unset, a key derived from the admin token); the API checks the signature and the expiry
before serving the file, so no token is needed to download and a link cannot be forged,
extended or pointed elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from urllib.parse import quote

from .db import now
from .instance import admin_token
from .settings import Settings

DOWNLOAD_PATH = "/files/"
# tenant/md5/name as written by the storage key rule; nothing else is ever served.
KEY_SHAPE = re.compile(r"^[A-Za-z0-9_.%-]{1,200}/[0-9a-f]{32}/[A-Za-z0-9_.-]{1,120}$")


def link_secret(settings: Settings) -> bytes:
    """The signing key, the same in the API and in every worker of the instance."""
    if settings.download_link_secret is not None:
        return settings.download_link_secret.get_secret_value().encode()
    token = admin_token(settings).encode()
    return hmac.new(token, b"mailproxy:download-links", hashlib.sha256).digest()


def signature(secret: bytes, key: str, expires: int) -> str:
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_url(secret: bytes, base_url: str, key: str, expires: int) -> str:
    return (
        f"{base_url.rstrip('/')}{DOWNLOAD_PATH}{quote(key)}"
        f"?expires={expires}&signature={signature(secret, key, expires)}"
    )


def check_link(secret: bytes, key: str, expires: int, given: str) -> str | None:
    """None when the link is valid, otherwise why it is not."""
    if not KEY_SHAPE.match(key) or ".." in key:
        return "unknown file"
    if not hmac.compare_digest(signature(secret, key, expires), given):
        return "the link's signature is not valid"
    if expires < now():
        return "the link has expired"
    return None


def stored_path(root: Path, key: str) -> Path | None:
    """The file of ``key`` under ``root``, or None if the key would lead anywhere else."""
    if not KEY_SHAPE.match(key) or ".." in key:
        return None
    real_root = root.resolve()
    path = (real_root / key).resolve()
    if real_root not in path.parents:
        return None
    return path
