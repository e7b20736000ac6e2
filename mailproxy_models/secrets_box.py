"""AES-256-GCM encryption of stored secrets (SMTP passwords, client credentials), with keys
that can be rotated while the service runs.

A stored value reads ``v1:<key id>:<base64 nonce + ciphertext>``; each value has its own
random 96-bit nonce, the key id (bound into the tag as associated data) says which key
wrote it. New values are written with the current key; older keys stay readable until a
rotation has re-encrypted everything and retired them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigurationError

KeyLoader = Callable[[], tuple[bytes, list[bytes]]]
# How often a process looks at the key files for a rotated current key.
RELOAD_INTERVAL = 1.0


def key_id_of(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    def __init__(
        self, current: bytes, previous: Iterable[bytes] = (), reload: KeyLoader | None = None
    ) -> None:
        self._reload = reload
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._install(current, list(previous))

    def _install(self, current: bytes, previous: list[bytes]) -> None:
        for key in [current, *previous]:
            if len(key) != 32:
                raise ConfigurationError("an encryption key must be 32 bytes (base64 of 32 bytes)")
        self._keys = {key_id_of(key): AESGCM(key) for key in [*previous, current]}
        self.key_id = key_id_of(current)

    def _refresh(self, force: bool = False) -> None:
        if self._reload is None:
            return
        with self._lock:
            if force or time.monotonic() - self._checked > RELOAD_INTERVAL:
                self._checked = time.monotonic()
                self._install(*self._reload())

    def encrypt(self, plaintext: str) -> str:
        self._refresh()
        key_id = self.key_id
        nonce = os.urandom(12)
        sealed = self._keys[key_id].encrypt(nonce, plaintext.encode(), key_id.encode())
        return f"v1:{key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str) -> str:
        key_id, raw = self._split(stored)
        if key_id not in self._keys:
            self._refresh(force=True)  # written under a key rotated in since we loaded
        if key_id not in self._keys:
            raise ConfigurationError(
                f"stored secret was written with key {key_id}, which is not configured "
                f"(current key {self.key_id})"
            )
        return self._keys[key_id].decrypt(raw[:12], raw[12:], key_id.encode()).decode()

    def is_current(self, stored: str) -> bool:
        return self._split(stored)[0] == self.key_id

    @staticmethod
    def _split(stored: str) -> tuple[str, bytes]:
        try:
            version, key_id, payload = stored.split(":", 2)
            if version != "v1":
                raise ValueError(version)
            return key_id, base64.b64decode(payload)
        except ValueError as exc:
            raise ConfigurationError("stored secret is not in the v1 format") from exc


def decode_key(configured: str, what: str = "MAILPROXY_ENCRYPTION_KEY") -> bytes:
    try:
        return base64.b64decode(configured, validate=True)
    except ValueError as exc:
        raise ConfigurationError(f"{what} is not valid base64") from exc


def load_or_create_key(configured: str | None, key_file: Path) -> bytes:
    """The configured key, else the key file's, else a new key written to a 0600 file."""
    if configured:
        return decode_key(configured)
    return KeyFiles(key_file).load_or_create()[0]


class KeyFiles:
    """The embedded mode's keys: ``encryption.key`` holds the current one, each
    ``encryption.key.old-<id>`` a previous one still needed for reading."""

    def __init__(self, current_file: Path) -> None:
        self.current_file = current_file

    def _old_files(self) -> list[Path]:
        return sorted(self.current_file.parent.glob(self.current_file.name + ".old-*"))

    def load_or_create(self) -> tuple[bytes, list[bytes]]:
        if not self.current_file.exists():
            try:
                write_private_file(self.current_file, _new_key_text())
            except FileExistsError:
                pass  # another process created it first: use theirs
        current = base64.b64decode(self.current_file.read_text().strip())
        previous = [base64.b64decode(path.read_text().strip()) for path in self._old_files()]
        return current, previous

    def rotate(self) -> str:
        """Make a new key current; the old one stays readable. Returns the new key id."""
        current, _ = self.load_or_create()
        keep = self.current_file.with_name(f"{self.current_file.name}.old-{key_id_of(current)}")
        write_private_file(keep, base64.b64encode(current).decode())
        staged = self.current_file.with_name(self.current_file.name + ".new")
        staged.unlink(missing_ok=True)
        write_private_file(staged, _new_key_text())
        os.replace(staged, self.current_file)  # atomic: readers see the old or the new key
        return key_id_of(base64.b64decode(self.current_file.read_text().strip()))

    def retire_previous(self) -> int:
        """Forget the previous keys (once nothing is encrypted under them any more)."""
        old = self._old_files()
        for path in old:
            path.unlink()
        return len(old)


def _new_key_text() -> str:
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def write_private_file(path: Path, content: str) -> None:
    """Create a file readable only by its owner (O_EXCL: never overwrite an existing one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content + "\n")
