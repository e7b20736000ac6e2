"""AES-256-GCM encryption of stored secrets (SMTP passwords, client credentials).

A stored value reads ``v1:<key id>:<base64 nonce + ciphertext>``; each value has its own
random 96-bit nonce, and the key id lets a future rotation tell which key wrote it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigurationError


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigurationError("the encryption key must be 32 bytes (base64 of 32 bytes)")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), self.key_id.encode())
        return f"v1:{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str) -> str:
        try:
            version, key_id, payload = stored.split(":", 2)
        except ValueError as exc:
            raise ConfigurationError("stored secret is not in the v1 format") from exc
        if version != "v1" or key_id != self.key_id:
            raise ConfigurationError(
                f"stored secret was written with key {key_id}, the configured key is {self.key_id}"
            )
        raw = base64.b64decode(payload)
        return self._aead.decrypt(raw[:12], raw[12:], key_id.encode()).decode()


def load_or_create_key(configured: str | None, key_file: Path) -> bytes:
    """The configured key, else the key file's, else a new key written to a 0600 file."""
    if configured:
        try:
            return base64.b64decode(configured, validate=True)
        except ValueError as exc:
            raise ConfigurationError("MAILPROXY_ENCRYPTION_KEY is not valid base64") from exc
    if key_file.exists():
        return base64.b64decode(key_file.read_text().strip())
    key = AESGCM.generate_key(bit_length=256)
    write_private_file(key_file, base64.b64encode(key).decode())
    return key


def write_private_file(path: Path, content: str) -> None:
    """Create a file readable only by its owner (O_EXCL: never overwrite an existing one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content + "\n")
