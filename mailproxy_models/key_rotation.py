"""Re-encryption of every stored secret under the current key, in small batches.

Idempotent and safe beside running services: a value already under the current key is
left alone, so the walk can be interrupted and run again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts import Account
from .secrets_box import SecretBox
from .tenants import Tenant

CLIENT_AUTH_SECRETS = ("password_enc", "token_enc")


def _stale_client_auth(box: SecretBox, auth: dict[str, Any] | None) -> bool:
    if not auth:
        return False
    return any(auth.get(f) and not box.is_current(auth[f]) for f in CLIENT_AUTH_SECRETS)


def count_stale_secrets(session: Session, box: SecretBox) -> int:
    """How many rows hold a secret written under an older key."""
    passwords = session.scalars(
        select(Account.password_enc).where(Account.password_enc.is_not(None))
    )
    stale = sum(1 for value in passwords if value and not box.is_current(value))
    auths = session.scalars(select(Tenant.client_auth))
    return stale + sum(1 for auth in auths if _stale_client_auth(box, auth))


def reencrypt_secrets(session: Session, box: SecretBox, limit: int = 100) -> int:
    """Re-encrypt up to ``limit`` rows whose secrets are under an older key; returns how
    many it changed (0 when done). The caller commits each batch."""
    changed = 0
    for account in session.scalars(select(Account).where(Account.password_enc.is_not(None))):
        if changed >= limit:
            return changed
        if account.password_enc and not box.is_current(account.password_enc):
            account.password_enc = box.encrypt(box.decrypt(account.password_enc))
            changed += 1
    for tenant in session.scalars(select(Tenant)):
        if changed >= limit:
            return changed
        if _stale_client_auth(box, tenant.client_auth):
            auth = dict(tenant.client_auth or {})
            for field in CLIENT_AUTH_SECRETS:
                if auth.get(field):
                    auth[field] = box.encrypt(box.decrypt(auth[field]))
            tenant.client_auth = auth
            changed += 1
    return changed
