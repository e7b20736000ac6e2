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


def test_previous_keys_still_read_and_new_values_use_the_current_key():
    old, new = os.urandom(32), os.urandom(32)
    written_before = SecretBox(old).encrypt("s3cret")
    box = SecretBox(new, previous=[old])
    assert box.decrypt(written_before) == "s3cret"
    assert not box.is_current(written_before) and box.is_current(box.encrypt("x"))


def test_a_process_reads_values_written_under_a_key_rotated_in_after_it_started(tmp_path):
    from mailproxy_models.secrets_box import KeyFiles

    files = KeyFiles(tmp_path / "encryption.key")
    running = SecretBox(*files.load_or_create(), reload=files.load_or_create)
    written_before = running.encrypt("before")
    old_id = running.key_id
    files.rotate()
    newcomer = SecretBox(*files.load_or_create(), reload=files.load_or_create)
    written_after = newcomer.encrypt("after")
    assert newcomer.key_id != old_id
    assert running.decrypt(written_after) == "after"  # reloads on the unknown key id
    assert running.key_id == newcomer.key_id  # and from then on writes with the new key
    assert newcomer.decrypt(written_before) == "before"
    assert oct((tmp_path / f"encryption.key.old-{old_id}").stat().st_mode & 0o777) == "0o600"
    assert files.retire_previous() == 1
    with pytest.raises(ConfigurationError, match="not configured"):
        SecretBox(*files.load_or_create()).decrypt(written_before)
