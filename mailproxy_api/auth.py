"""Who is calling: the admin (instance-wide token) or one tenant (its API key)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, g, request

from mailproxy_models.api_keys import tenant_id_for_key

from .transaction import db_session

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caller:
    tenant_id: str | None  # None: the admin

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    @property
    def label(self) -> str:
        """Who, for the audit log."""
        return "admin" if self.tenant_id is None else f"tenant:{self.tenant_id}"

    def scope(self, requested_tenant: str | None) -> str | None:
        """The tenant a request acts on: a tenant token only ever its own."""
        if self.is_admin:
            return requested_tenant
        if requested_tenant not in (None, self.tenant_id):
            # Same answer as a missing tenant: a tenant learns nothing about others.
            abort(404, description=f"tenant '{requested_tenant}' does not exist")
        return self.tenant_id


def acting_tenant(requested: str | None) -> str:
    """The one tenant a request acts on; the admin token must name it (403 otherwise: the
    admin token acts on a tenant only when told which)."""
    tenant_id = current_caller().scope(requested)
    if tenant_id is None:
        abort(403, description="tenant_id is required with the admin token.")
    return tenant_id


def _presented_token() -> str | None:
    token = request.headers.get("X-API-Token")
    if token:
        return token.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_caller() -> Caller:
    """Authenticate once per request; 401 without a valid token."""
    if "caller" in g:
        return g.caller  # type: ignore[no-any-return]
    token = _presented_token()
    if not token:
        abort(401, description="Missing API token: send it in the X-API-Token header.")
    admin_token: str = current_app.config["MAILPROXY_ADMIN_TOKEN"]
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        g.caller = Caller(tenant_id=None)
        return g.caller  # type: ignore[no-any-return]
    tenant_id = tenant_id_for_key(db_session(), token)
    if tenant_id is None:
        abort(401, description="Invalid, revoked or expired API token.")
    g.caller = Caller(tenant_id=tenant_id)
    return g.caller  # type: ignore[no-any-return]


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_caller().is_admin:
            abort(403, description="This needs the admin token.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def token_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_caller()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
