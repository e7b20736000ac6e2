"""Tenants: the applications sharing one instance, each isolated from the others."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import JSON, Boolean, Float, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, now
from .errors import Conflict, InvalidInput, NotFound
from .secrets_box import SecretBox

SECRET_MASK = "***"  # noqa: S105 - the mask shown instead of a secret
AUTH_METHODS = ("none", "basic", "bearer")


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    client_base_url: Mapped[str | None] = mapped_column(Text)
    client_sync_path: Mapped[str] = mapped_column(String(255), default="/proxy_sync")
    client_attachment_path: Mapped[str] = mapped_column(String(255), default="/attachments")
    # {"method": ..., "user": ..., "password_enc": ..., "token_enc": ...}; secrets encrypted.
    client_auth: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rate_limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Seconds before each retry, instead of the instance's MAILPROXY_RETRY_SCHEDULE.
    retry_schedule: Mapped[list[int] | None] = mapped_column(JSON)
    large_file_config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, default=now, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now, nullable=False)


TENANT_FIELDS = (
    "name",
    "client_base_url",
    "client_sync_path",
    "client_attachment_path",
    "rate_limits",
    "retry_schedule",
    "active",
)
LARGE_FILE_ACTIONS = ("warn", "reject", "rewrite")
# Upper bounds of the numbers in large_file_config (MB, days): finite and sane.
LARGE_FILE_LIMITS = {"max_size_mb": 102400, "file_ttl_days": 3650}
STORAGE_SCHEMES = ("local", "s3://", "gs://", "azure://")
# storage_options entries stored encrypted (``<name>_enc``) and shown masked.
STORAGE_SECRETS = (
    "secret_access_key",
    "session_token",
    "connection_string",
    "account_key",
    "service_account_json",
)


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant '{tenant_id}' does not exist")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.id)))


def create_tenant(session: Session, box: SecretBox, data: dict[str, Any]) -> Tenant:
    """Insert a tenant; an id already taken is a Conflict."""
    if session.get(Tenant, data["id"]) is not None:
        raise Conflict(f"tenant '{data['id']}' already exists")
    tenant = Tenant(id=data["id"])
    _apply(tenant, box, data)
    session.add(tenant)
    session.flush()
    return tenant


def update_tenant(session: Session, box: SecretBox, tenant_id: str, data: dict[str, Any]) -> Tenant:
    tenant = get_tenant(session, tenant_id)
    _apply(tenant, box, data)
    session.flush()
    return tenant


def delete_tenant(session: Session, tenant_id: str) -> None:
    """Remove the tenant with its accounts, keys and messages (foreign keys cascade)."""
    session.delete(get_tenant(session, tenant_id))
    session.flush()


# Fields that null clears; the others keep a value (the API refuses null for them).
NULLABLE_FIELDS = ("name", "client_base_url", "rate_limits", "retry_schedule")


def _apply(tenant: Tenant, box: SecretBox, data: dict[str, Any]) -> None:
    for field in TENANT_FIELDS:
        if field not in data:
            continue
        if data[field] is None and field not in NULLABLE_FIELDS:
            raise InvalidInput(f"{field} may not be null", {field: ["Field may not be null."]})
        setattr(tenant, field, data[field])
    if "client_auth" in data:
        tenant.client_auth = seal_client_auth(box, data["client_auth"], tenant.client_auth)
    if "large_file_config" in data:
        tenant.large_file_config = seal_large_file_config(
            box, data["large_file_config"], tenant.large_file_config
        )


def seal_large_file_config(
    box: SecretBox, given: dict[str, Any] | None, stored: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Check a large_file_config block and encrypt the storage credentials in it; a masked
    credential keeps the stored one."""
    if given is None:
        return None

    def invalid(field: str, why: str) -> InvalidInput:
        return InvalidInput(
            f"large_file_config.{field}: {why}", {f"large_file_config.{field}": [why]}
        )

    sealed = dict(given)
    action = sealed.get("action", "warn")
    if action not in LARGE_FILE_ACTIONS:
        raise invalid("action", "must be warn, reject or rewrite")
    for field in ("max_size_mb", "file_ttl_days"):
        value = sealed.get(field)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 < value <= LARGE_FILE_LIMITS[field]
        ):
            raise invalid(field, f"must be a number over 0 and at most {LARGE_FILE_LIMITS[field]}")
    url = sealed.get("storage_url") or "local"
    if not isinstance(url, str) or not url.startswith(STORAGE_SCHEMES):
        raise invalid(
            "storage_url",
            "must be local, s3://bucket/prefix, gs://bucket/prefix or azure://container/prefix",
        )
    options = sealed.get("storage_options") or {}
    if not isinstance(options, dict):
        raise invalid("storage_options", "must be an object")
    previous = (stored or {}).get("storage_options") or {}
    sealed_options: dict[str, Any] = {}
    for key, value in options.items():
        if key in STORAGE_SECRETS:
            if value == SECRET_MASK:
                if previous.get(f"{key}_enc"):
                    sealed_options[f"{key}_enc"] = previous[f"{key}_enc"]
            elif value:
                sealed_options[f"{key}_enc"] = box.encrypt(str(value))
        elif not key.endswith("_enc"):
            sealed_options[key] = value
    sealed["storage_options"] = sealed_options
    return sealed


def public_large_file_config(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """large_file_config as the API shows it: storage credentials replaced by the mask."""
    if not stored:
        return stored
    shown = dict(stored)
    options = stored.get("storage_options") or {}
    shown["storage_options"] = {
        (key.removesuffix("_enc")): (SECRET_MASK if key.endswith("_enc") else value)
        for key, value in options.items()
    }
    return shown


def seal_client_auth(
    box: SecretBox, given: dict[str, Any] | None, stored: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Encrypt the secrets of a client_auth block; a masked value keeps the stored secret."""
    if given is None:
        return None
    method = given.get("method", "none")
    if method not in AUTH_METHODS:
        raise InvalidInput(
            "client_auth.method must be none, basic or bearer",
            {"client_auth.method": [f"'{method}' is not one of none, basic, bearer"]},
        )
    sealed: dict[str, Any] = {"method": method, "user": given.get("user")}
    for secret in ("password", "token"):
        value = given.get(secret)
        if value == SECRET_MASK and stored:
            sealed[f"{secret}_enc"] = stored.get(f"{secret}_enc")
        elif value:
            sealed[f"{secret}_enc"] = box.encrypt(str(value))
    return sealed


def open_auth(box: SecretBox, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A sealed auth block (client_auth, or an attachment's auth) with its secrets decrypted,
    for the moment of the call that needs them."""
    if not stored:
        return None
    auth: dict[str, Any] = {"method": stored.get("method", "none"), "user": stored.get("user")}
    for secret in ("password", "token"):
        if stored.get(f"{secret}_enc"):
            auth[secret] = box.decrypt(stored[f"{secret}_enc"])
    return auth


def public_client_auth(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """client_auth as the API shows it: secrets replaced by the mask."""
    if not stored:
        return None
    shown: dict[str, Any] = {"method": stored.get("method", "none"), "user": stored.get("user")}
    for secret in ("password", "token"):
        if stored.get(f"{secret}_enc"):
            shown[secret] = SECRET_MASK
    return shown


def tenant_record(tenant: Tenant) -> dict[str, Any]:
    """A tenant as the API shows it: no secret in clear."""
    return {
        "id": tenant.id,
        "name": tenant.name,
        "client_base_url": tenant.client_base_url,
        "client_sync_path": tenant.client_sync_path,
        "client_attachment_path": tenant.client_attachment_path,
        "client_auth": public_client_auth(tenant.client_auth),
        "rate_limits": tenant.rate_limits,
        "retry_schedule": tenant.retry_schedule,
        "large_file_config": public_large_file_config(tenant.large_file_config),
        "active": tenant.active,
        "created_at": int(tenant.created_at),
    }
