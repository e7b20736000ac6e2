"""The tenant's suppression list: addresses that hard-bounced, refused at enqueue (mailproxy
extension; the seed system has no such list)."""

from __future__ import annotations

from typing import Any

from mailproxy_models.suppression_list import (
    list_suppressed,
    suppress,
    suppression_record,
    unsuppress,
)
from mailproxy_models.tenants import get_tenant

from ..audit import audit
from ..auth import acting_tenant, token_required
from ..request_json import Blueprint
from ..schemas import (
    OkSchema,
    SuppressionAddAnswerSchema,
    SuppressionAddSchema,
    SuppressionListSchema,
    SuppressionQuerySchema,
    TenantScopeQuerySchema,
)
from ..transaction import db_session

blp = Blueprint("suppressions", __name__, description="Suppression list (hard bounces)")


def _tenant_scope(requested: str | None) -> str:
    tenant_id = acting_tenant(requested)
    get_tenant(db_session(), tenant_id)
    return tenant_id


@blp.route("/suppressions", methods=["GET"])
@token_required
@blp.arguments(SuppressionQuerySchema, location="query")
@blp.response(200, SuppressionListSchema)
def get_suppressions(query: dict[str, Any]) -> dict[str, Any]:
    """The tenant's suppressed addresses in address order, a page at a time."""
    tenant_id = _tenant_scope(query.get("tenant_id"))
    limit = query["limit"]
    entries, total = list_suppressed(db_session(), tenant_id, limit, query.get("after"))
    next_after = entries[-1].address if len(entries) == limit else None
    return {
        "ok": True,
        "suppressions": [suppression_record(e) for e in entries],
        "total": total,
        "next_after": next_after,
    }


@blp.route("/suppressions", methods=["POST"])
@token_required
@blp.arguments(SuppressionAddSchema)
@blp.response(200, SuppressionAddAnswerSchema)
def post_suppressions(data: dict[str, Any]) -> dict[str, Any]:
    """Add addresses by hand; messages to them are refused until they are removed."""
    tenant_id = _tenant_scope(data.get("tenant_id"))
    session = db_session()
    already = [
        address
        for address in data["addresses"]
        if not suppress(session, tenant_id, address, "manual", data.get("reason"))
    ]
    added = len(data["addresses"]) - len(already)
    audit("suppression.add", tenant_id, "suppression", None, {"added": added})
    return {"ok": True, "added": added, "already_listed": already}


@blp.route("/suppression/<path:address>", methods=["DELETE"])
@token_required
@blp.arguments(TenantScopeQuerySchema, location="query")
@blp.response(200, OkSchema)
def delete_suppression(query: dict[str, Any], address: str) -> dict[str, Any]:
    """Remove an address from the list (404 if it is not on it): messages to it are
    accepted again."""
    tenant_id = _tenant_scope(query.get("tenant_id"))
    unsuppress(db_session(), tenant_id, address)
    audit("suppression.remove", tenant_id, "suppression", address)
    return {"ok": True}
