"""The audit log, read through the API: the admin sees all, a tenant its own entries."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from mailproxy_models.audit import AuditFilter, audit_record, list_audit

from ..auth import current_caller, token_required
from ..schemas import AuditListSchema, AuditQuerySchema
from ..transaction import db_session

blp = Blueprint("audit", __name__, description="Audit log of administrative changes")


@blp.route("/audit-log", methods=["GET"])
@token_required
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditListSchema)
def get_audit_log(query: dict[str, Any]) -> dict[str, Any]:
    """Who changed what and when, newest first (`next_cursor` pages back)."""
    flt = AuditFilter(current_caller().scope(query.get("tenant_id")), query.get("action"))
    entries, next_cursor = list_audit(db_session(), flt, query["limit"], query.get("cursor"))
    return {"ok": True, "entries": [audit_record(e) for e in entries], "next_cursor": next_cursor}
