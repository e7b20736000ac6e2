"""Re-encryption walks every stored secret, attachment credentials of waiting messages too."""

from __future__ import annotations

import os

from sqlalchemy import select

from mailproxy_models.db import session_scope
from mailproxy_models.key_rotation import count_stale_secrets, reencrypt_secrets
from mailproxy_models.messages import Message, enqueue_messages
from mailproxy_models.secrets_box import SecretBox
from tests.models.factories import LIMITS, database, message, tenant_with_account


def test_waiting_messages_attachment_credentials_move_to_the_new_key(database_url):
    old_key, new_key = os.urandom(32), os.urandom(32)
    old_box = SecretBox(old_key)
    attachment = {
        "filename": "a.pdf",
        "storage_path": "https://files.example.com/a.pdf",
        "auth": {"method": "bearer", "token": "attachment-token-1"},
    }
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        with session_scope(sessions) as session:
            result = enqueue_messages(
                session, "acme", [message("m1", attachments=[attachment])], LIMITS, box=old_box
            )
            assert result.queued == 1
        new_box = SecretBox(new_key, previous=[old_key])
        with session_scope(sessions) as session:
            assert count_stale_secrets(session, new_box) == 1
            assert reencrypt_secrets(session, new_box) == 1
        with session_scope(sessions) as session:
            assert count_stale_secrets(session, new_box) == 0
            payload = session.scalar(select(Message.payload))
        sealed = payload["attachments"][0]["auth"]["token_enc"]
        assert SecretBox(new_key).decrypt(sealed) == "attachment-token-1"


def test_imap_passwords_move_to_the_new_key_with_the_smtp_ones(database_url):
    from mailproxy_models.accounts import Account, upsert_account

    old_key, new_key = os.urandom(32), os.urandom(32)
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        with session_scope(sessions) as session:
            values = {"tenant_id": "acme", "id": "main", "imap_host": "imap.example.com"}
            upsert_account(session, SecretBox(old_key), {**values, "imap_password": "imap-pw"})
            upsert_account(
                session,
                SecretBox(old_key),
                {**values, "id": "other", "host": "h", "port": 25, "password": "smtp-pw"},
            )
        new_box = SecretBox(new_key, previous=[old_key])
        with session_scope(sessions) as session:
            assert count_stale_secrets(session, new_box) == 2
            assert reencrypt_secrets(session, new_box) == 2
        with session_scope(sessions) as session:
            assert count_stale_secrets(session, new_box) == 0
            main = session.get(Account, ("acme", "main"))
            other = session.get(Account, ("acme", "other"))
            assert SecretBox(new_key).decrypt(main.imap_password_enc) == "imap-pw"
            assert SecretBox(new_key).decrypt(other.password_enc) == "smtp-pw"
