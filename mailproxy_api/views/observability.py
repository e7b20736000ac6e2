"""Observability endpoints: readiness for the orchestrator, Prometheus metrics."""

from __future__ import annotations

import hmac
from typing import Any

from flask import abort, current_app, request
from flask.wrappers import Response
from prometheus_client import generate_latest
from prometheus_flask_exporter import PrometheusMetrics

from mailproxy_models.instance import Instance
from mailproxy_models.readiness import (
    DEFAULT_TIMEOUT,
    OK,
    broker_check,
    check_database,
    run_checks,
    worker_check,
)

from ..request_json import Blueprint
from ..schemas import ReadySchema

blp = Blueprint("observability", __name__, description="Readiness and metrics")

# The classic text format, understood by every Prometheus version (generate_latest's output).
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@blp.route("/ready", methods=["GET"])
@blp.response(200, ReadySchema)
@blp.alt_response(
    503,
    schema=ReadySchema,
    description="The database or the broker failed, or messages are due and no worker takes tasks.",
)
@blp.doc(security=[])
def ready() -> Any:
    """Readiness: the database answers `SELECT 1` and the broker accepts a connection, each
    within 2 s, and a worker has taken a task within `MAILPROXY_READY_WORKER_STALE_SECONDS`
    (checked only while messages are due). 503 names what failed. Needs no token."""
    instance: Instance = current_app.extensions["mailproxy"]
    celery = current_app.extensions["mailproxy_celery"]
    checks = run_checks(
        {
            "database": lambda: check_database(instance.engine),
            "broker": broker_check(celery, DEFAULT_TIMEOUT),
            "worker": worker_check(instance.sessions, instance.settings.ready_worker_stale_seconds),
        },
        DEFAULT_TIMEOUT,
    )
    failed = sorted(name for name, result in checks.items() if result != OK)
    if failed:
        error = "; ".join(f"{name}: {checks[name]}" for name in failed)
        return {"ok": False, "error": f"not ready: {error}", "checks": checks}, 503
    return {"ok": True, "checks": checks}


@blp.route("/metrics", methods=["GET"])
@blp.doc(
    security=[{"Bearer": []}, {}],
    responses={
        "200": {
            "description": "Prometheus text exposition format: HTTP metrics of the API "
            "processes, delivery metrics of the whole fleet (docs/observability.md lists "
            "them).",
            "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
        },
        "401": {"$ref": "#/components/responses/DEFAULT_ERROR"},
    },
)
@PrometheusMetrics.do_not_track()
def metrics() -> Response:
    """Prometheus metrics. Open, unless `MAILPROXY_METRICS_TOKEN` is set: then it needs
    `Authorization: Bearer <that token>`."""
    token = current_app.config.get("MAILPROXY_METRICS_TOKEN")
    if token and not _presents(token):
        abort(401, description="This needs the metrics token: Authorization: Bearer <token>.")
    registry = current_app.extensions["mailproxy_metrics"]
    return Response(generate_latest(registry), mimetype=None, content_type=PROMETHEUS_TEXT)


def _presents(token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else ""
    return hmac.compare_digest(given.encode(), token.encode())
