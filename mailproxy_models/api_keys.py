"""Per-tenant API keys: shown once when issued, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Float, ForeignKey, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, now, unix_seconds
from .errors import InvalidInput, NotFound
from .tenants import get_tenant

KEY_PREFIX = "mpk_"


class ApiKey(Base):
    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # A random 256-bit key needs no slow hash: SHA-256 is preimage-resistant for it, and a
    # lookup by hash keeps authentication O(1).
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # The first characters of the key, so a person can tell keys apart; not a secret.
    key_prefix: Mapped[str | None] = mapped_column(String(12))
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float, default=now, nullable=False)
    expires_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def issue_api_key(
    session: Session, tenant_id: str, expires_at: float | None = None, name: str | None = None
) -> str:
    """Create a key for the tenant and return it in clear: the only time it is readable.
    An expiry that is not in the future would make a key born dead: refused."""
    get_tenant(session, tenant_id)
    if expires_at is not None and expires_at <= now():
        raise InvalidInput(
            "expires_at is not in the future", {"expires_at": ["Must be in the future."]}
        )
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            tenant_id=tenant_id,
            key_hash=hash_key(raw_key),
            key_prefix=raw_key[:12],
            expires_at=expires_at,
            name=name,
        )
    )
    session.flush()
    return raw_key


def revoke_api_keys(session: Session, tenant_id: str) -> int:
    """Revoke every live key of the tenant; returns how many were revoked."""
    get_tenant(session, tenant_id)
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def list_api_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    get_tenant(session, tenant_id)
    return list(
        session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.pk))
    )


def revoke_api_key(session: Session, tenant_id: str, key_id: int) -> None:
    """Revoke one key (rotation: issue the new one, move clients, revoke the old one)."""
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"API key {key_id} of tenant '{tenant_id}' does not exist")
    if key.revoked_at is None:
        key.revoked_at = now()


def api_key_record(key: ApiKey) -> dict[str, object]:
    """What may be shown of a key: never the key, nor its hash."""

    return {
        "key_id": key.pk,
        "name": key.name,
        "created_at": unix_seconds(key.created_at),
        "expires_at": unix_seconds(key.expires_at),
        "last_used_at": unix_seconds(key.last_used_at),
        "revoked_at": unix_seconds(key.revoked_at),
        "prefix": key.key_prefix or "",
    }


def tenant_id_for_key(session: Session, raw_key: str) -> str | None:
    """The id of the tenant a live key belongs to, or None (unknown, revoked or expired).

    The lookup is by hash, so no secret is compared byte by byte with a timing leak. A key
    cannot outlive its tenant: deleting the tenant deletes its keys.
    """
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key)))
    current = now()
    if key is None or key.revoked_at is not None:
        return None
    if key.expires_at is not None and key.expires_at <= current:
        return None
    if key.last_used_at is None or current - key.last_used_at > 60:
        key.last_used_at = current  # coarse, so that reads stay reads
    return key.tenant_id
