"""A tenant's attachment settings as the worker uses them: sources and large-file policy."""

from __future__ import annotations

import ipaddress

from mailproxy_models.errors import ConfigurationError
from mailproxy_models.tenants import Tenant, open_auth

from .attachments import ALL_NETWORKS, IPNetwork, TenantSources
from .delivery import AttachmentContext
from .offload import Offloader
from .runtime import WorkerRuntime
from .storage import StorageError, open_storage

DAY = 86400.0


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
        private_networks=private_networks(tenant.id, settings.attachment_private_url_tenants),
        endpoint_url=endpoint_url,
        endpoint_auth=open_auth(runtime.instance.box, tenant.client_auth),
        box=runtime.instance.box,
    )
    return AttachmentContext(runtime.fetcher, sources, _offloader(tenant, runtime))


def private_networks(tenant_id: str, entries: list[str]) -> tuple[IPNetwork, ...]:
    """Entries ``tenant`` (every non-public address) or ``tenant=cidr`` (that network)."""
    networks: list[IPNetwork] = []
    for entry in entries:
        name, _, network = entry.partition("=")
        if name.strip() != tenant_id:
            continue
        if not network.strip():
            return ALL_NETWORKS
        networks.append(ipaddress.ip_network(network.strip(), strict=False))
    return tuple(networks)


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
    ttl_days = config.get("file_ttl_days") or settings.offload_link_ttl_days
    return Offloader(
        threshold_bytes=int(float(config.get("max_size_mb", 10)) * 1024 * 1024),
        action=action,
        storage=storage,
        link_ttl_seconds=float(ttl_days) * DAY,
        storage_problem=problem,
    )
