"""The Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

import swagger_ui_bundle
from flask import Flask, abort, request, send_from_directory
from flask.wrappers import Response
from flask_smorest import Api
from werkzeug.routing import BaseConverter

from mailproxy_models.instance import Instance, admin_token, open_instance
from mailproxy_models.log_format import configure_logging
from mailproxy_models.settings import Settings, get_settings
from mailproxy_models.wakeups import WakeupPublisher, make_celery_app

from . import errors, transaction
from .metrics import install_metrics
from .schemas import ACCOUNT_ID_PATTERN, TENANT_ID_PATTERN, ErrorSchema
from .views import (
    accounts,
    audit_log,
    downloads,
    inbound_mail,
    messages,
    observability,
    service,
    suppressions,
    tenants,
)

SWAGGER_ASSETS = "/docs/assets/"


class TenantIdConverter(BaseConverter):
    """A tenant id in a path: the same pattern as when the tenant is created."""

    regex = TENANT_ID_PATTERN[1:-1]


class AccountIdConverter(BaseConverter):
    regex = ACCOUNT_ID_PATTERN[1:-1]


class MessageIdConverter(BaseConverter):
    """A message id in a path: one segment, up to 255 characters."""

    regex = "[^/]{1,255}"


PATH_CONVERTERS = {
    "tenant_id": (TenantIdConverter, TENANT_ID_PATTERN, 64),
    "account_id": (AccountIdConverter, ACCOUNT_ID_PATTERN, 64),
    "message_id": (MessageIdConverter, "^[^/\\u0000]{1,255}$", 255),
}


class MailproxyApi(Api):  # type: ignore[misc]
    # Every documented error answer has mailproxy's shape: {"ok": false, "error", "errors"?}.
    ERROR_SCHEMA = ErrorSchema

    def _init_spec(self, *args: Any, **kwargs: Any) -> None:
        super()._init_spec(*args, **kwargs)
        to_dict = self.spec.to_dict

        def strict_to_dict() -> dict[str, Any]:
            document: dict[str, Any] = to_dict()
            _null_means_null(document)
            return document

        self.spec.to_dict = strict_to_dict


def _null_means_null(node: Any) -> None:
    """apispec writes a nullable nested object as ``anyOf: [{$ref}, {type: object, nullable}]``,
    whose second branch takes any object at all; make it take null only."""
    if isinstance(node, dict):
        for branch in node.get("anyOf", []):
            if branch == {"type": "object", "nullable": True}:
                branch["enum"] = [None]
        for value in node.values():
            _null_means_null(value)
    elif isinstance(node, list):
        for value in node:
            _null_means_null(value)


def create_app(settings: Settings | None = None, instance: Instance | None = None) -> Flask:
    settings = settings or get_settings()
    instance = instance or open_instance(settings)
    app = Flask("mailproxy_api")
    app.config.update(
        API_TITLE="mailproxy",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_ASSETS,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        MAILPROXY_ADMIN_TOKEN=admin_token(settings),
        MAILPROXY_METRICS_TOKEN=(
            settings.metrics_token.get_secret_value() if settings.metrics_token else None
        ),
        JSON_SORT_KEYS=False,
    )
    app.extensions["mailproxy"] = instance
    celery = make_celery_app(settings, name="mailproxy_api")
    app.extensions["mailproxy_celery"] = celery
    app.extensions["mailproxy_wakeups"] = WakeupPublisher(celery)
    logging.getLogger("mailproxy_api").setLevel(settings.log_level)
    if settings.log_format == "json":
        configure_logging("json", settings.log_level)
    app.extensions["mailproxy_metrics"] = install_metrics(app, instance.sessions)

    api = MailproxyApi(
        app,
        spec_kwargs={
            "info": {"description": "Transactional email proxy. Contract: docs/api.md."},
            "components": {
                "securitySchemes": {
                    "ApiToken": {"type": "apiKey", "in": "header", "name": "X-API-Token"},
                    "Bearer": {"type": "http", "scheme": "bearer"},
                }
            },
            "security": [{"ApiToken": []}, {"Bearer": []}],
        },
    )
    for name, (converter, pattern, max_length) in PATH_CONVERTERS.items():
        app.url_map.converters[name] = converter
        api.register_converter(
            converter,
            lambda _c, p=pattern, n=max_length: {"type": "string", "pattern": p, "maxLength": n},
        )
    for module in (
        service,
        tenants,
        accounts,
        messages,
        suppressions,
        inbound_mail,
        audit_log,
        downloads,
    ):
        api.register_blueprint(module.blp)
    api.register_blueprint(observability.blp)
    # Registered after Api: its generic handler would otherwise answer in its own shape.
    errors.register_error_handlers(app)
    transaction.install(app)

    @app.before_request
    def _no_nul_characters() -> None:
        # NUL is never meaningful in mailproxy's input, and PostgreSQL cannot store it: refuse
        # it at the door rather than as a database error. In a JSON body it can only appear
        # escaped, so one scan of the raw bytes finds it.
        if (
            "\x00" in request.path
            or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True))
            or b"\\u0000" in request.get_data(cache=True)
        ):
            abort(400, description="NUL characters (\\u0000) are not allowed in any field.")

    @app.before_request
    def _json_only() -> None:
        if (
            request.method in ("POST", "PUT", "PATCH")
            and request.content_length
            and not request.is_json
        ):
            abort(415, description="Send the body as JSON with Content-Type: application/json.")

    @app.route(f"{SWAGGER_ASSETS}<path:filename>")
    def swagger_assets(filename: str) -> Response:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    return app
