"""Re-encryption of every stored secret under the current key, in small batches.

Idempotent and safe beside running services: a value already under the current key is
left alone, so the walk can be interrupted and run again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .accounts import Account
from .messages import WAITING, Message
from .secrets_box import SecretBox
from .tenants import Tenant

CLIENT_AUTH_SECRETS = ("password_enc", "token_enc")
ACCOUNT_SECRETS = ("password_enc", "imap_password_enc")  # SMTP and IMAP passwords


def _stale_client_auth(box: SecretBox, auth: dict[str, Any] | None) -> bool:
    if not auth:
        return False
    return any(auth.get(f) and not box.is_current(auth[f]) for f in CLIENT_AUTH_SECRETS)


def _stale_storage(box: SecretBox, config: dict[str, Any] | None) -> bool:
    """Storage credentials of large_file_config (``storage_options.<name>_enc``)."""
    options = (config or {}).get("storage_options") or {}
    return any(
        k.endswith("_enc") and isinstance(v, str) and not box.is_current(v)
        for k, v in options.items()
    )


def _reencrypt_storage(box: SecretBox, config: dict[str, Any]) -> dict[str, Any]:
    options = {
        k: box.encrypt(box.decrypt(v)) if k.endswith("_enc") and isinstance(v, str) else v
        for k, v in (config.get("storage_options") or {}).items()
    }
    return {**config, "storage_options": options}


def _stale_attachment_auth(box: SecretBox, payload: dict[str, Any]) -> bool:
    return any(
        _stale_client_auth(box, attachment.get("auth"))
        for attachment in payload.get("attachments") or []
    )


def _waiting_with_attachment_auth(session: Session) -> Any:
    """Waiting messages (only those still fetch attachments) whose payload may hold
    credentials; the JSON is checked in Python, the same on SQLite and PostgreSQL."""
    return session.scalars(select(Message).where(Message.status.in_(WAITING)))


def _accounts_with_secrets(session: Session) -> Any:
    return session.scalars(
        select(Account).where(
            or_(Account.password_enc.is_not(None), Account.imap_password_enc.is_not(None))
        )
    )


def _stale_account(box: SecretBox, account: Account) -> bool:
    values = (getattr(account, column) for column in ACCOUNT_SECRETS)
    return any(value and not box.is_current(value) for value in values)


def count_stale_secrets(session: Session, box: SecretBox) -> int:
    """How many rows hold a secret written under an older key."""
    stale = sum(1 for account in _accounts_with_secrets(session) if _stale_account(box, account))
    stale += sum(
        1 for m in _waiting_with_attachment_auth(session) if _stale_attachment_auth(box, m.payload)
    )
    tenants = session.execute(select(Tenant.client_auth, Tenant.large_file_config))
    return stale + sum(
        1
        for auth, config in tenants
        if _stale_client_auth(box, auth) or _stale_storage(box, config)
    )


def reencrypt_secrets(session: Session, box: SecretBox, limit: int = 100) -> int:
    """Re-encrypt up to ``limit`` rows whose secrets are under an older key; returns how
    many it changed (0 when done). The caller commits each batch."""
    changed = 0
    for account in _accounts_with_secrets(session):
        if changed >= limit:
            return changed
        if _stale_account(box, account):
            for column in ACCOUNT_SECRETS:
                value = getattr(account, column)
                if value and not box.is_current(value):
                    setattr(account, column, box.encrypt(box.decrypt(value)))
            changed += 1
    for tenant in session.scalars(select(Tenant)):
        if changed >= limit:
            return changed
        stale_auth = _stale_client_auth(box, tenant.client_auth)
        stale_storage = _stale_storage(box, tenant.large_file_config)
        if stale_auth:
            tenant.client_auth = _reencrypt_auth(box, tenant.client_auth or {})
        if stale_storage:
            tenant.large_file_config = _reencrypt_storage(box, tenant.large_file_config or {})
        changed += int(stale_auth or stale_storage)
    for message in _waiting_with_attachment_auth(session):
        if changed >= limit:
            return changed
        if _stale_attachment_auth(box, message.payload):
            payload = dict(message.payload)
            payload["attachments"] = [
                {**a, "auth": _reencrypt_auth(box, a["auth"])} if a.get("auth") else a
                for a in payload["attachments"]
            ]
            message.payload = payload
            changed += 1
    return changed


def _reencrypt_auth(box: SecretBox, auth: dict[str, Any]) -> dict[str, Any]:
    return {
        **auth,
        **{f: box.encrypt(box.decrypt(auth[f])) for f in CLIENT_AUTH_SECRETS if auth.get(f)},
    }
