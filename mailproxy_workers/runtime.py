"""What a worker process holds: instance wiring and its SMTP pool, built once per process.

Built lazily and again after a fork, so prefork children never share a database
connection or an SMTP socket with their parent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from mailproxy_models.db import session_scope
from mailproxy_models.instance import Instance, open_instance
from mailproxy_models.settings import Settings, get_settings
from mailproxy_models.worker_heartbeats import record_heartbeat

from .attachment_cache import AttachmentCache
from .attachments import AttachmentFetcher, FetchLimits
from .smtp_pool import SmtpConnectionPool

log = logging.getLogger(__name__)


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


# A heartbeat row is written at most this often per process (a fraction of the stale limit).
HEARTBEAT_EVERY = 5.0
_heartbeat_lock = threading.Lock()
_last_heartbeat = 0.0


def note_task_taken(worker: str) -> None:
    """Record that this worker took a task (readiness reads it), at most every few seconds.
    A failure is logged and never fails the task."""
    global _last_heartbeat
    every = min(HEARTBEAT_EVERY, get_settings().ready_worker_stale_seconds / 4)
    with _heartbeat_lock:
        if time.monotonic() - _last_heartbeat < every:
            return
        _last_heartbeat = time.monotonic()
    try:
        with session_scope(worker_runtime().instance.sessions) as session:
            record_heartbeat(session, worker, os.getpid())
    except Exception:  # noqa: BLE001 - a missed heartbeat must not cost a delivery
        log.warning("could not record the worker heartbeat", exc_info=True)
