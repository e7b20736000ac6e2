"""The log of mail read from the tenant's bounce and receipt mailboxes (mailproxy
extension): what each mail was taken for, and whether it reached a message."""

from __future__ import annotations

from typing import Any

from mailproxy_models.inbound_log import InboundLogFilter, list_inbound_mail
from mailproxy_models.tenants import get_tenant

from ..auth import acting_tenant, token_required
from ..request_json import Blueprint
from ..schemas import InboundMailListSchema, InboundMailQuerySchema
from ..transaction import db_session

blp = Blueprint("inbound_mail", __name__, description="Mail read from bounce mailboxes")


@blp.route("/inbound-mail", methods=["GET"])
@token_required
@blp.arguments(InboundMailQuerySchema, location="query", error_status_code=400)
@blp.response(200, InboundMailListSchema)
def get_inbound_mail(query: dict[str, Any]) -> dict[str, Any]:
    """Mail read from the tenant's mailboxes, newest first (`next_cursor` pages back). Mail that was
    set aside (left unseen in the mailbox) shows here with why: `outcome` `uncorrelated` or
    `ignored`. Kept for `MAILPROXY_INBOUND_LOG_RETENTION_DAYS`."""
    session = db_session()
    tenant_id = acting_tenant(query.get("tenant_id"))
    get_tenant(session, tenant_id)
    where = InboundLogFilter(query.get("account_id"), query.get("kind"), query.get("outcome"))
    entries, next_cursor = list_inbound_mail(
        session, tenant_id, where, query["limit"], query.get("cursor")
    )
    return {"ok": True, "inbound_mail": entries, "next_cursor": next_cursor}
