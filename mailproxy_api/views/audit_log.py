"""The audit log, read through the API: the admin sees all, a tenant its own entries."""

from __future__ import annotations

from typing import Any

from mailproxy_models.audit import AuditFilter, audit_record, list_audit
from mailproxy_models.tenants import get_tenant

from ..auth import current_caller, token_required
from ..request_json import Blueprint
from ..schemas import AuditListSchema, AuditQuerySchema
from ..transaction import db_session

blp = Blueprint("audit", __name__, description="Audit log of administrative changes")


@blp.route("/audit-log", methods=["GET"])
@token_required
@blp.arguments(AuditQuerySchema, location="query", error_status_code=400)
@blp.response(200, AuditListSchema)
def get_audit_log(query: dict[str, Any]) -> dict[str, Any]:
    """Who changed what and when, newest first (`next_cursor` pages back). A tenant token
    reads its tenant's entries since the tenant was created; the admin token every entry."""
    caller, session = current_caller(), db_session()
    tenant_id = caller.scope(query.get("tenant_id"))
    # A tenant sees its own lifetime only; the admin sees every entry of an id.
    since = None if caller.is_admin else get_tenant(session, caller.tenant_id or "").created_at
    flt = AuditFilter(tenant_id, query.get("action"), since)
    entries, next_cursor = list_audit(session, flt, query["limit"], query.get("cursor"))
    return {"ok": True, "entries": [audit_record(e) for e in entries], "next_cursor": next_cursor}
