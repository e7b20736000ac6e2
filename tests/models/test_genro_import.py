"""genro-mail-proxy import, domain side: where the key is found, keys that cannot be kept,
and what a second run does."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from sqlalchemy import select

from mailproxy_models import migrate
from mailproxy_models.api_keys import ApiKey, tenant_id_for_key
from mailproxy_models.db import make_engine, make_session_factory, session_scope
from mailproxy_models.errors import ConfigurationError, InvalidInput
from mailproxy_models.genro_import import (
    GenroInstance,
    genro_database,
    genro_key,
    import_genro,
    open_secret,
)
from mailproxy_models.message_validation import MessageLimits
from mailproxy_models.secrets_box import SecretBox

LIMITS = MessageLimits(max_recipients=50, max_headers=20)


@pytest.fixture
def sessions(sqlite_url):
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def _seal(plain: str, key: bytes) -> str:
    """What genro-mail-proxy stores: ENC: + base64(nonce + AES-256-GCM ciphertext)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return (
        "ENC:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain.encode(), None)).decode()
    )


def test_the_key_is_found_where_genro_keeps_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MAIL_PROXY_ENCRYPTION_KEY", raising=False)
    database = tmp_path / "mail_service.db"
    database.write_bytes(b"")
    assert genro_database(tmp_path) == database
    assert genro_key(database) is None or os.path.exists("/run/secrets/encryption_key")
    raw = os.urandom(32)
    (tmp_path / ".encryption_key").write_bytes(raw)
    assert genro_key(database) == raw
    (tmp_path / ".encryption_key").write_text(base64.b64encode(raw).decode() + "\n")
    assert genro_key(database) == raw
    other = os.urandom(32)
    monkeypatch.setenv("MAIL_PROXY_ENCRYPTION_KEY", base64.b64encode(other).decode())
    assert genro_key(database) == other
    assert genro_key(database, base64.b64encode(raw).decode()) == raw  # the option first
    with pytest.raises(ConfigurationError, match="32-byte"):
        genro_key(database, "c2hvcnQ=")
    with pytest.raises(InvalidInput, match="no genro-mail-proxy database"):
        genro_database(tmp_path / "missing")


def test_secrets_open_with_the_right_key_only():
    key = os.urandom(32)
    assert open_secret(_seal("s3cret", key), key, "password") == "s3cret"
    assert open_secret("in clear", None, "password") == "in clear"
    with pytest.raises(ConfigurationError, match="--genro-key"):
        open_secret(_seal("s3cret", key), None, "password")
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        open_secret(_seal("s3cret", key), os.urandom(32), "password")


def _source(key_hash: str) -> GenroInstance:
    tenant = {"id": "acme", "name": "Acme", "active": 1, "api_key_hash": key_hash}
    account = {
        "tenant_id": "acme",
        "id": "main",
        "host": "127.0.0.1",
        "port": 25,
        "user": "u",
        "password": "p",
        "use_tls": 0,
    }
    message = {
        "id": "m1",
        "tenant_id": "acme",
        "account_id": "main",
        "priority": 1,
        "batch_code": "nov",
        "deferred_ts": None,
        "payload": '{"from": "a@example.com", "to": ["b@example.org"], "subject": "s"}',
    }
    return GenroInstance([tenant], [account], [message])


def test_a_key_in_another_form_is_replaced_once_and_said(sessions):
    box = SecretBox(os.urandom(32))
    source = _source("$2b$12$notasha256digestatallxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
    with session_scope(sessions) as session:
        first = import_genro(session, box, source, None, LIMITS)
    assert first.keys_not_kept == [("acme", "its stored hash is not a SHA-256 digest")]
    (new_key,) = first.new_keys.values()
    with session_scope(sessions) as session:
        assert tenant_id_for_key(session, new_key) == "acme"
        second = import_genro(session, box, source, None, LIMITS)
    assert second.new_keys == {} and (second.tenants, second.accounts, second.messages) == (0, 0, 0)
    assert second.already_here == {"tenants": 1, "accounts": 1, "messages": 1}


def test_a_sha256_key_is_kept_as_is(sessions):
    box = SecretBox(os.urandom(32))
    client_key = "the-client-key"
    source = _source(hashlib.sha256(client_key.encode()).hexdigest())
    with session_scope(sessions) as session:
        summary = import_genro(session, box, source, None, LIMITS)
        assert summary.api_keys == 1 and summary.new_keys == {}
        assert tenant_id_for_key(session, client_key) == "acme"
        assert session.scalar(select(ApiKey.name)) == "genro-mail-proxy"
