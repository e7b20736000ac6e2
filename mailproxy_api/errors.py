"""Every error the API returns is JSON: ``{"ok": false, "error": "...", "errors"?: {...}}``.

Domain exceptions map to status codes here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from flask.wrappers import Response
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler

from mailproxy_models.errors import ConfigurationError, Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

DATABASE_DOWN = "The database is unavailable; retry shortly. Nothing was stored."
STATUS_SENTENCES = {
    400: "The request is malformed: send a JSON body of the documented shape.",
    401: "Missing or invalid API token: send it in the X-API-Token header.",
    403: "This token may not do that.",
    404: "No such resource.",
    405: "This method is not allowed on this path.",
    413: "The request body is too large.",
    431: "The request headers are too large.",
    500: "Internal error; it was logged. Nothing was changed.",
    415: "Send the body as JSON (Content-Type: application/json).",
    422: "The request is well-formed but some fields are invalid.",
}


def error_response(status: int, message: str, errors: Any = None) -> tuple[Response, int]:
    body: dict[str, Any] = {"ok": False, "error": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), status


def _flatten_webargs(messages: Any) -> Any:
    """webargs nests errors by location ({"json": {...}}); clients want the fields."""
    if isinstance(messages, dict) and len(messages) == 1:
        ((location, inner),) = messages.items()
        if location in ("json", "query", "path", "form", "headers") and isinstance(inner, dict):
            return inner
    return messages


def _describe(errors: Any) -> str:
    if isinstance(errors, dict) and errors:
        parts = []
        for field, messages in list(errors.items())[:5]:
            text = messages[0] if isinstance(messages, list) and messages else messages
            parts.append(f"{field}: {text}")
        return "; ".join(str(part) for part in parts)
    return ""


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        errors = _flatten_webargs(data.get("messages")) if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        if errors:
            message = f"{STATUS_SENTENCES.get(status, exc.name)} {_describe(errors)}".strip()
        elif not message:
            message = (
                exc.description
                if exc.description and exc.description != type(exc).description
                else STATUS_SENTENCES.get(status, exc.name)
            )
        response, status = error_response(status, message, errors)
        # Headers the exception carries (Allow on a 405, Retry-After...) stay on the answer.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound) -> tuple[Response, int]:
        return error_response(404, str(exc))

    @app.errorhandler(Conflict)
    def _conflict(exc: Conflict) -> tuple[Response, int]:
        return error_response(409, str(exc))

    @app.errorhandler(InvalidInput)
    def _invalid(exc: InvalidInput) -> tuple[Response, int]:
        return error_response(422, str(exc), exc.errors)

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> tuple[Response, int]:
        log.error("database unavailable: %s", exc.orig)
        return error_response(503, DATABASE_DOWN)

    @app.errorhandler(ConfigurationError)
    def _misconfigured(exc: ConfigurationError) -> tuple[Response, int]:
        log.error("configuration error: %s", exc)
        return error_response(500, f"The server is misconfigured: {exc}")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, "Internal error; it was logged. Nothing was changed.")


class JsonErrorRequestHandler(WSGIRequestHandler):
    """The embedded server's request handler: errors it answers itself, before the
    application sees the request (a header line over 64 KB: 431, a malformed request line),
    are JSON like every other answer."""

    error_content_type = "application/json"
    error_message_format = '{"ok": false, "error": "%(code)d %(message)s"}'

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The message goes into a JSON string: keep it to characters that need no escaping.
        safe = "".join(c for c in (message or "") if c.isalnum() or c in " .,:;-_()")
        super().send_error(code, safe or None, None)
