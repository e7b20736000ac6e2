"""Pushes a tenant's delivery reports to its application and reads the acknowledgement.

One call per batch: ``POST client_base_url + client_sync_path`` with ``{"delivery_report":
[...]}`` and the tenant's basic or bearer auth. Only a 200 with ``{"ok": true}`` counts;
then every entry not listed in its ``error`` is acknowledged. Anything else (refused
connection, timeout, non-200, not JSON, ``ok`` false) acknowledges nothing and backs off.
The call goes through the outbound guard: a URL leading to a loopback, link-local or private
address the operator did not allow this tenant is refused, and the reports wait.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests

from mailproxy_models.db import now, session_scope
from mailproxy_models.reports import (
    acknowledge,
    claim_tenant_sync,
    pending_reports,
    record_sync_failure,
    record_sync_success,
)
from mailproxy_models.secrets_box import SecretBox
from mailproxy_models.tenants import Tenant

from .outbound_guard import IPNetwork, find_forbidden, guarded_session, tenant_private_networks
from .runtime import WorkerRuntime

log = logging.getLogger(__name__)
LEASE_SECONDS = 120


@dataclass(frozen=True)
class SyncResult:
    called: bool
    acknowledged: int = 0
    more: bool = False  # another batch is waiting, or the client said it has more


class ClientRefused(Exception):
    """The client's answer does not acknowledge anything."""


def _auth(box: SecretBox, client_auth: dict[str, Any] | None) -> dict[str, Any]:
    """requests keyword arguments for the tenant's basic or bearer auth (secrets decrypted)."""
    stored = client_auth or {}
    method = stored.get("method", "none")
    if method == "basic":
        password = box.decrypt(stored["password_enc"]) if stored.get("password_enc") else ""
        return {"auth": (stored.get("user") or "", password)}
    if method == "bearer" and stored.get("token_enc"):
        return {"headers": {"Authorization": f"Bearer {box.decrypt(stored['token_enc'])}"}}
    return {}


def _post(
    url: str,
    entries: list[dict[str, Any]],
    auth: dict[str, Any],
    timeout: float,
    allowed: tuple[IPNetwork, ...] = (),
) -> dict[str, Any]:
    session = guarded_session(allowed)
    try:
        answer = session.post(url, json={"delivery_report": entries}, timeout=timeout, **auth)
    except requests.RequestException as exc:
        forbidden = find_forbidden(exc)
        if forbidden is not None:
            raise ClientRefused(f"not sent to {url}: {forbidden}") from exc
        raise ClientRefused(f"cannot reach {url}: {type(exc).__name__}") from exc
    finally:
        session.close()
    if answer.status_code != 200:
        raise ClientRefused(f"{url} answered {answer.status_code}")
    try:
        body = answer.json()
    except ValueError as exc:
        raise ClientRefused(f"{url} answered 200 without JSON") from exc
    if not isinstance(body, dict) or body.get("ok") is not True:
        raise ClientRefused(
            f"{url} answered ok={body.get('ok') if isinstance(body, dict) else body!r}"
        )
    return body


def sync_tenant(runtime: WorkerRuntime, tenant_id: str) -> SyncResult:
    """One batch of the tenant's reports (maybe empty: the heartbeat call)."""
    settings = runtime.instance.settings
    sessions = runtime.instance.sessions
    with session_scope(sessions) as session:
        if not claim_tenant_sync(session, tenant_id, LEASE_SECONDS, now()):
            return SyncResult(called=False)
        tenant = session.get(Tenant, tenant_id)
        if tenant is None or not tenant.client_base_url:
            return SyncResult(called=False)
        url = tenant.client_base_url.rstrip("/") + tenant.client_sync_path
        auth = _auth(runtime.instance.box, tenant.client_auth)
        entries = pending_reports(session, tenant_id, settings.report_batch_size)
    allowed = tenant_private_networks(tenant_id, settings.effective_private_networks_allowed)
    try:
        body = _post(url, [e.body for e in entries], auth, settings.report_timeout, allowed)
    except ClientRefused as exc:
        with session_scope(sessions) as session:
            retry_at = record_sync_failure(
                session, tenant_id, str(exc), settings.report_backoff, now()
            )
        log.warning(
            "reports of tenant %s not delivered: %s; next try in %.0fs",
            tenant_id,
            exc,
            retry_at - now(),
            extra={"tenant_id": tenant_id},
        )
        return SyncResult(called=True)
    refused = {str(i) for i in body.get("error") or []}
    next_after = body.get("next_sync_after")
    with session_scope(sessions) as session:
        acknowledged = acknowledge(session, entries, refused, now())
        record_sync_success(
            session,
            tenant_id,
            float(next_after) if isinstance(next_after, int | float) else None,
            now(),
        )
    queued = body.get("queued")
    more = len(entries) == settings.report_batch_size or (isinstance(queued, int) and queued > 0)
    log.info(
        "tenant %s: %d report entries acknowledged",
        tenant_id,
        acknowledged,
        extra={"tenant_id": tenant_id},
    )
    return SyncResult(called=True, acknowledged=acknowledged, more=more)
