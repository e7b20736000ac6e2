"""Tenants and their API keys (admin, except reading and updating one's own tenant)."""

from __future__ import annotations

from typing import Any

from flask import current_app

from mailproxy_models.api_keys import (
    api_key_record,
    issue_api_key,
    list_api_keys,
    revoke_api_key,
    revoke_api_keys,
)
from mailproxy_models.reports import sync_status
from mailproxy_models.tenants import (
    create_tenant,
    delete_tenant,
    get_tenant,
    list_tenants,
    tenant_record,
    update_tenant,
)

from ..audit import audit, changed_fields
from ..auth import admin_required, current_caller, token_required
from ..request_json import Blueprint
from ..schemas import (
    MAX_BIGINT,
    ApiKeyAnswerSchema,
    ApiKeyInSchema,
    ApiKeyListSchema,
    OkSchema,
    SyncStatusListSchema,
    TenantAnswerSchema,
    TenantInSchema,
    TenantListSchema,
    TenantUpdateSchema,
)
from ..transaction import db_session

blp = Blueprint("tenants", __name__, description="Tenants: applications sharing this instance")


SECRETS = ("client_auth",)


def _box() -> Any:
    return current_app.extensions["mailproxy"].box


@blp.route("/tenant", methods=["POST"])
@admin_required
@blp.arguments(TenantInSchema)
@blp.response(200, TenantAnswerSchema)
def post_tenant(data: dict[str, Any]) -> dict[str, Any]:
    """Create a tenant; the answer holds its API key, shown only this once."""
    session = db_session()
    tenant = create_tenant(session, _box(), data)
    api_key = issue_api_key(session, tenant.id, name="initial")
    audit("tenant.create", tenant.id, "tenant", tenant.id, changed_fields(data, SECRETS))
    return {"ok": True, "tenant": tenant_record(tenant), "api_key": api_key}


@blp.route("/tenants", methods=["GET"])
@admin_required
@blp.response(200, TenantListSchema)
def get_tenants() -> dict[str, Any]:
    return {"ok": True, "tenants": [tenant_record(t) for t in list_tenants(db_session())]}


@blp.route("/tenants/sync-status", methods=["GET"])
@admin_required
@blp.response(200, SyncStatusListSchema)
def get_sync_status() -> dict[str, Any]:
    """Per tenant with a sync URL: last and next report sync, failures, unreported entries."""
    return {"ok": True, "tenants": sync_status(db_session())}


@blp.route("/tenant/<tenant_id:tenant_id>", methods=["GET"])
@token_required
@blp.response(200, TenantAnswerSchema)
def get_one_tenant(tenant_id: str) -> dict[str, Any]:
    scope = current_caller().scope(tenant_id)
    return {"ok": True, "tenant": tenant_record(get_tenant(db_session(), scope or tenant_id))}


@blp.route("/tenant/<tenant_id:tenant_id>", methods=["PUT"])
@token_required
@blp.arguments(TenantUpdateSchema)
@blp.response(200, TenantAnswerSchema)
def put_tenant(data: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """Change the fields given (a tenant token: its own tenant). A field given as `null` is
    cleared (back to its default); a field left out keeps its value. A body is required
    (`{}` changes nothing)."""
    scope = current_caller().scope(tenant_id) or tenant_id
    tenant = update_tenant(db_session(), _box(), scope, data)
    audit("tenant.update", scope, "tenant", scope, changed_fields(data, SECRETS))
    return {"ok": True, "tenant": tenant_record(tenant)}


@blp.route("/tenant/<tenant_id:tenant_id>", methods=["DELETE"])
@admin_required
@blp.response(200, OkSchema)
def remove_tenant(tenant_id: str) -> dict[str, Any]:
    """Delete the tenant with its accounts, keys and messages."""
    delete_tenant(db_session(), tenant_id)
    audit("tenant.delete", tenant_id, "tenant", tenant_id)
    return {"ok": True}


@blp.route("/tenant/<tenant_id:tenant_id>/api-key", methods=["POST"])
@admin_required
@blp.arguments(ApiKeyInSchema)
@blp.response(200, ApiKeyAnswerSchema)
def post_api_key(data: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """Issue another key (old ones stay valid until revoked: rotate without downtime). An
    `expires_at` that is not in the future is refused (422)."""
    key = issue_api_key(db_session(), tenant_id, data.get("expires_at"), data.get("name"))
    audit("api_key.issue", tenant_id, "api_key", key[:12], {"name": data.get("name")})
    return {"ok": True, "api_key": key}


@blp.route("/tenant/<tenant_id:tenant_id>/api-key", methods=["DELETE"])
@admin_required
@blp.response(200, ApiKeyAnswerSchema)
def delete_api_keys(tenant_id: str) -> dict[str, Any]:
    """Revoke every key of the tenant."""
    revoked = revoke_api_keys(db_session(), tenant_id)
    audit("api_key.revoke_all", tenant_id, "api_key", None, {"revoked": revoked})
    return {"ok": True, "revoked": revoked}


@blp.route("/tenant/<tenant_id:tenant_id>/api-keys", methods=["GET"])
@admin_required
@blp.response(200, ApiKeyListSchema)
def get_api_keys(tenant_id: str) -> dict[str, Any]:
    """The tenant's keys: name, prefix, dates; never the key itself."""
    keys = list_api_keys(db_session(), tenant_id)
    return {"ok": True, "api_keys": [api_key_record(k) for k in keys]}


@blp.route(
    f"/tenant/<tenant_id:tenant_id>/api-key/<int(min=1, max={MAX_BIGINT}):key_id>",
    methods=["DELETE"],
)
@admin_required
@blp.response(200, OkSchema)
def delete_api_key(tenant_id: str, key_id: int) -> dict[str, Any]:
    """Revoke one key (its `key_id` as listed by GET /tenant/{tenant_id}/api-keys)."""
    revoke_api_key(db_session(), tenant_id, key_id)
    audit("api_key.revoke", tenant_id, "api_key", str(key_id))
    return {"ok": True}
