"""Service endpoints: liveness, status, wake delivery now."""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from mailproxy_models.claims import due_priorities, queue_depths
from mailproxy_models.message_validation import PRIORITIES
from mailproxy_models.wakeups import wake_delivery, wake_report_sync

from ..auth import current_caller, token_required
from ..schemas import OkSchema, RunNowAnswerSchema, RunNowSchema, StatusSchema
from ..transaction import db_session

blp = Blueprint("service", __name__, description="Service")

STARTED = time.time()


def _version() -> str:
    try:
        return version("mailproxy")
    except PackageNotFoundError:
        return "0+unknown"


@blp.route("/health", methods=["GET"])
@blp.response(200, OkSchema)
def health() -> dict[str, Any]:
    """Liveness: the process answers. Needs no token."""
    return {"ok": True}


@blp.route("/status", methods=["GET"])
@token_required
@blp.response(200, StatusSchema)
def status() -> dict[str, Any]:
    """Version, uptime and waiting messages per priority: the caller's tenant's, or for the
    admin every tenant's."""
    depths = queue_depths(db_session(), current_caller().tenant_id)
    return {
        "ok": True,
        "version": _version(),
        "uptime_seconds": int(time.time() - STARTED),
        "active": True,
        "queue_depth": {PRIORITIES[p]: depth for p, depth in depths.items()},
    }


@blp.route("/commands/run-now", methods=["POST"])
@token_required
@blp.arguments(RunNowSchema, required=False)
@blp.response(200, RunNowAnswerSchema)
def run_now(data: dict[str, Any]) -> dict[str, Any]:
    """Wake delivery at once for every priority that has due messages, and the report sync
    of the tenant (the caller's, or the one named by the admin)."""
    tenant_id = current_caller().scope((data or {}).get("tenant_id"))
    celery = current_app.extensions["mailproxy_celery"]
    priorities = due_priorities(db_session())
    wake_delivery(celery, priorities)
    if tenant_id is not None:
        wake_report_sync(celery, [tenant_id])
    return {"ok": True, "woken": priorities}
