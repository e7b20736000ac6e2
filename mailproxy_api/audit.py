"""Writes audit entries for the current caller, in the request's transaction."""

from __future__ import annotations

from typing import Any

from mailproxy_models.audit import record_audit

from .auth import current_caller
from .transaction import db_session


def audit(
    action: str,
    tenant_id: str | None,
    target_type: str,
    target_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    record_audit(
        db_session(), current_caller().label, action, tenant_id, target_type, target_id, details
    )


def changed_fields(data: dict[str, Any], secret_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Audit details of a change: the fields given, secrets only named, never their values."""
    return {
        "fields": sorted(k for k in data if k not in secret_fields),
        "secrets_changed": sorted(k for k in secret_fields if k in data),
    }
