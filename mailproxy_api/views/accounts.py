"""SMTP accounts of a tenant; passwords go in, never come out."""

from __future__ import annotations

from typing import Any

from flask import current_app

from mailproxy_models.accounts import (
    account_record,
    delete_account,
    get_account,
    list_accounts,
    upsert_account,
)
from mailproxy_models.tenants import get_tenant

from ..audit import audit, changed_fields
from ..auth import acting_tenant, current_caller, token_required
from ..request_json import Blueprint
from ..schemas import (
    AccountAnswerSchema,
    AccountInSchema,
    AccountListSchema,
    AccountQuerySchema,
    OkSchema,
    TenantScopeQuerySchema,
)
from ..transaction import db_session

blp = Blueprint("accounts", __name__, description="SMTP accounts")


@blp.route("/account", methods=["POST"])
@token_required
@blp.arguments(AccountInSchema)
@blp.response(200, AccountAnswerSchema)
def post_account(data: dict[str, Any]) -> dict[str, Any]:
    """Create the account, or update the fields given."""
    data["tenant_id"] = acting_tenant(data.get("tenant_id"))
    instance = current_app.extensions["mailproxy"]
    account = upsert_account(
        db_session(), instance.box, data, default_ttl=instance.settings.smtp_pool_ttl
    )
    details = changed_fields(data, ("password", "imap_password"))
    if "allow_insecure_auth" in data:  # credentials in clear: who allowed it, and when
        details["allow_insecure_auth"] = data["allow_insecure_auth"]
    audit("account.upsert", account.tenant_id, "account", account.id, details)
    return {"ok": True, "account": account_record(account)}


@blp.route("/accounts", methods=["GET"])
@token_required
@blp.arguments(AccountQuerySchema, location="query")
@blp.response(200, AccountListSchema)
def get_accounts(query: dict[str, Any]) -> dict[str, Any]:
    tenant_id = current_caller().scope(query.get("tenant_id"))
    if tenant_id is not None:
        get_tenant(db_session(), tenant_id)
    accounts = list_accounts(db_session(), tenant_id)
    return {"ok": True, "accounts": [account_record(a) for a in accounts]}


@blp.route("/account/<account_id:account_id>", methods=["GET"])
@token_required
@blp.arguments(TenantScopeQuerySchema, location="query")
@blp.response(200, AccountAnswerSchema)
def get_one_account(query: dict[str, Any], account_id: str) -> dict[str, Any]:
    tenant_id = acting_tenant(query.get("tenant_id"))
    return {"ok": True, "account": account_record(get_account(db_session(), tenant_id, account_id))}


@blp.route("/account/<account_id:account_id>", methods=["DELETE"])
@token_required
@blp.arguments(TenantScopeQuerySchema, location="query")
@blp.response(200, OkSchema)
def remove_account(query: dict[str, Any], account_id: str) -> dict[str, Any]:
    """Delete an account; refused (409) while messages wait to leave through it."""
    tenant_id = acting_tenant(query.get("tenant_id"))
    delete_account(db_session(), tenant_id, account_id)
    audit("account.delete", tenant_id, "account", account_id)
    return {"ok": True}
