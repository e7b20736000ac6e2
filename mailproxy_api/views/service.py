"""Service endpoints: liveness, status, wake delivery now."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from mailproxy_models.claims import due_priorities, queue_depths
from mailproxy_models.mailboxes import tenant_mailboxes
from mailproxy_models.message_validation import PRIORITIES
from mailproxy_models.suspensions import activate, suspend, suspension_state
from mailproxy_models.tenants import get_tenant
from mailproxy_models.wakeups import wake_delivery, wake_mailbox_polls, wake_report_sync

from ..audit import audit
from ..auth import acting_tenant, current_caller, token_required
from ..request_json import Blueprint
from ..schemas import (
    OkSchema,
    RunNowAnswerSchema,
    RunNowSchema,
    StatusSchema,
    SuspensionAnswerSchema,
    SuspensionSchema,
)
from ..transaction import after_commit, db_session

blp = Blueprint("service", __name__, description="Service")

STARTED = time.time()


def _version() -> str:
    try:
        return version("mailproxy")
    except PackageNotFoundError:
        return "0+unknown"


@blp.route("/health", methods=["GET"])
@blp.response(200, OkSchema)
@blp.doc(security=[])
def health() -> dict[str, Any]:
    """Liveness: the process answers. Needs no token."""
    return {"ok": True}


@blp.route("/status", methods=["GET"])
@token_required
@blp.response(200, StatusSchema)
def status() -> dict[str, Any]:
    """Version, uptime and waiting messages per priority: the caller's tenant's, or for the
    admin every tenant's."""
    caller, session = current_caller(), db_session()
    depths = queue_depths(session, caller.tenant_id)
    active = caller.tenant_id is None or get_tenant(session, caller.tenant_id).active
    return {
        "ok": True,
        "version": _version(),
        "uptime_seconds": int(time.time() - STARTED),
        "active": active,
        "queue_depth": {PRIORITIES[p]: depth for p, depth in depths.items()},
    }


@blp.route("/commands/suspend", methods=["POST"])
@token_required
@blp.arguments(SuspensionSchema)
@blp.response(200, SuspensionAnswerSchema)
def post_suspend(data: dict[str, Any]) -> dict[str, Any]:
    """Hold the tenant's messages, or one batch of them: they wait, nothing is lost."""
    return _change_suspension(data, suspend, "suspend")


@blp.route("/commands/activate", methods=["POST"])
@token_required
@blp.arguments(SuspensionSchema)
@blp.response(200, SuspensionAnswerSchema)
def post_activate(data: dict[str, Any]) -> dict[str, Any]:
    """Release the tenant (and all its held batches), or one batch; delivery wakes up."""
    publisher = current_app.extensions["mailproxy_wakeups"]
    after_commit(lambda: publisher.request(PRIORITIES))
    return _change_suspension(data, activate, "activate")


def _change_suspension(
    data: dict[str, Any], change: Callable[[Session, str, str | None], None], verb: str
) -> dict[str, Any]:
    tenant_id = acting_tenant(data.get("tenant_id"))
    session = db_session()
    change(session, tenant_id, data.get("batch_code"))
    target = ("batch", data["batch_code"]) if data.get("batch_code") else ("tenant", tenant_id)
    audit(f"{target[0]}.{verb}", tenant_id, target[0], target[1])
    return {"ok": True, **suspension_state(session, tenant_id)}


@blp.route("/commands/run-now", methods=["POST"])
@token_required
@blp.arguments(RunNowSchema, required=False)
@blp.response(200, RunNowAnswerSchema)
def run_now(data: dict[str, Any]) -> dict[str, Any]:
    """Wake delivery at once for every priority that has due messages, and the report sync
    and bounce/receipt mailbox polls of the tenant (the caller's, or the one named by the
    admin)."""
    tenant_id = current_caller().scope((data or {}).get("tenant_id"))
    celery = current_app.extensions["mailproxy_celery"]
    priorities = due_priorities(db_session())
    wake_delivery(celery, priorities)
    if tenant_id is not None:
        wake_report_sync(celery, [tenant_id])
        wake_mailbox_polls(celery, tenant_mailboxes(db_session(), tenant_id))
    return {"ok": True, "woken": priorities}
