"""AES-256-GCM for stored secrets."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.exceptions import InvalidTag

from mailproxy_models.errors import ConfigurationError
from mailproxy_models.secrets_box import SecretBox, load_or_create_key


def test_each_value_gets_its_own_nonce_and_decrypts_back():
    box = SecretBox(os.urandom(32))
    first, second = box.encrypt("s3cret"), box.encrypt("s3cret")
    assert first != second and "s3cret" not in first
    assert box.decrypt(first) == box.decrypt(second) == "s3cret"


def test_tampered_ciphertext_is_refused():
    box = SecretBox(os.urandom(32))
    version, key_id, payload = box.encrypt("s3cret").split(":")
    raw = bytearray(base64.b64decode(payload))
    raw[-1] ^= 1
    with pytest.raises(InvalidTag):
        box.decrypt(f"{version}:{key_id}:{base64.b64encode(bytes(raw)).decode()}")


def test_value_written_with_another_key_names_both_keys():
    stored = SecretBox(os.urandom(32)).encrypt("x")
    with pytest.raises(ConfigurationError, match="written with key"):
        SecretBox(os.urandom(32)).decrypt(stored)


def test_generated_key_file_is_private_and_reused(tmp_path):
    key_file = tmp_path / "encryption.key"
    key = load_or_create_key(None, key_file)
    assert len(key) == 32 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert load_or_create_key(None, key_file) == key


def test_configured_key_must_be_32_bytes_of_base64():
    with pytest.raises(ConfigurationError):
        load_or_create_key("not base64!", None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        SecretBox(load_or_create_key(base64.b64encode(b"short").decode(), None))  # type: ignore[arg-type]
