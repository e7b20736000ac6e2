"""What a worker process holds: instance wiring and its SMTP pool, built once per process.

Built lazily and again after a fork, so prefork children never share a database
connection or an SMTP socket with their parent.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from mailproxy_models.instance import Instance, open_instance
from mailproxy_models.settings import Settings, get_settings

from .attachment_cache import AttachmentCache
from .attachments import AttachmentFetcher, FetchLimits
from .smtp_pool import SmtpConnectionPool


@dataclass
class WorkerRuntime:
    instance: Instance
    pool: SmtpConnectionPool
    name: str
    pid: int
    fetcher: AttachmentFetcher


_runtime: WorkerRuntime | None = None


def worker_runtime() -> WorkerRuntime:
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        settings = get_settings()
        _runtime = WorkerRuntime(
            instance=open_instance(settings),
            pool=SmtpConnectionPool(settings.smtp_timeout, settings.smtp_ca_file),
            name=f"{socket.gethostname()}:{os.getpid()}",
            pid=os.getpid(),
            fetcher=attachment_fetcher(settings),
        )
    return _runtime


def attachment_fetcher(settings: Settings) -> AttachmentFetcher:
    cache = AttachmentCache(
        settings.effective_attachment_cache_dir,
        memory_bytes=settings.attachment_cache_memory_bytes,
        memory_item_bytes=settings.attachment_cache_memory_item_bytes,
        disk_bytes=settings.attachment_cache_disk_bytes,
        # A fetch never writes its spool for longer than its time limit.
        stale_spool_seconds=max(3600.0, 4 * settings.attachment_fetch_timeout),
    )
    limits = FetchLimits(
        timeout=settings.attachment_fetch_timeout,
        max_bytes=settings.attachment_max_bytes,
        concurrency=settings.attachment_fetch_concurrency,
    )
    return AttachmentFetcher(limits, cache)
