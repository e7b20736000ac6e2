"""A tenant's attachment settings as the worker uses them: sources and large-file policy."""

from __future__ import annotations

import math
from typing import Any

from mailproxy_models.errors import ConfigurationError
from mailproxy_models.tenants import Tenant, open_auth

from .attachments import TenantSources
from .delivery import AttachmentContext
from .offload import Offloader
from .outbound_guard import IPNetwork, tenant_private_networks
from .runtime import WorkerRuntime
from .storage import StorageError, open_storage

DAY = 86400.0
MB = 1024 * 1024
# A threshold above any attachment a worker fetches means "never over": larger settings
# (1e308, Infinity) are clamped here rather than overflowing an integer.
MAX_THRESHOLD_MB = 1024 * 1024
MAX_LINK_TTL_DAYS = 3650.0


def attachment_context(tenant: Tenant, runtime: WorkerRuntime) -> AttachmentContext:
    settings = runtime.instance.settings
    root = settings.attachment_root
    endpoint_url = None
    if tenant.client_base_url:
        path = tenant.client_attachment_path or "/attachments"
        endpoint_url = tenant.client_base_url.rstrip("/") + "/" + path.lstrip("/")
    sources = TenantSources(
        tenant_id=tenant.id,
        filesystem_root=(root.expanduser() / tenant.id) if root else None,
        private_networks=private_networks(tenant.id, settings.effective_private_networks_allowed),
        endpoint_url=endpoint_url,
        endpoint_auth=open_auth(runtime.instance.box, tenant.client_auth),
        box=runtime.instance.box,
    )
    return AttachmentContext(runtime.fetcher, sources, _offloader(tenant, runtime))


def private_networks(tenant_id: str, entries: list[str]) -> tuple[IPNetwork, ...]:
    """Entries ``tenant`` (every non-public address) or ``tenant=cidr`` (that network)."""
    return tenant_private_networks(tenant_id, entries)


def _offloader(tenant: Tenant, runtime: WorkerRuntime) -> Offloader | None:
    config = tenant.large_file_config or {}
    if not config.get("enabled"):
        return None
    settings = runtime.instance.settings
    action = config.get("action", "warn")
    storage, problem = None, None
    if action == "rewrite":
        url = config.get("storage_url") or "local"
        try:
            storage = open_storage(
                url, config.get("storage_options") or {}, settings, runtime.instance.box
            )
        except ImportError as exc:
            problem = f"the SDK for {url} is not installed ({exc.name}): pip install the extra"
        except (StorageError, ConfigurationError, ValueError, TypeError) as exc:
            problem = f"storage {url} cannot be opened: {exc}"
    threshold_mb, threshold_problem = _number(config, "max_size_mb", 10.0, MAX_THRESHOLD_MB)
    ttl_days, ttl_problem = _number(
        config, "file_ttl_days", settings.offload_link_ttl_days, MAX_LINK_TTL_DAYS
    )
    problem = threshold_problem or ttl_problem or problem
    if threshold_problem or ttl_problem:
        # Only this tenant's messages with attachments wait (temporarily, with the reason),
        # until the setting is corrected; nothing is sent under a policy that cannot be read.
        action, storage, threshold_mb = "rewrite", None, 0.0
    return Offloader(
        threshold_bytes=int(threshold_mb * MB),
        action=action,
        storage=storage,
        link_ttl_seconds=ttl_days * DAY,
        storage_problem=problem,
    )


def _number(
    config: dict[str, Any], key: str, default: float, ceiling: float
) -> tuple[float, str | None]:
    """A setting of large_file_config, clamped to ``ceiling``; (default, reason) when it is
    not a number of zero or more (NaN, negative, text)."""
    value = config.get(key)
    if value is None or (value == 0 and key == "file_ttl_days"):  # 0: the instance default
        return default, None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return default, _bad_setting(key, value)
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return default, _bad_setting(key, value)
    if math.isnan(number) or number < 0:
        return default, _bad_setting(key, value)
    return min(number, ceiling), None


def _bad_setting(key: str, value: Any) -> str:
    return (
        f"the tenant's large_file_config.{key} ({str(value)[:40]!r}) is not a number of "
        "zero or more; correct the tenant's settings"
    )
