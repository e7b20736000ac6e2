"""What a worker process holds: instance wiring and its SMTP pool, built once per process.

Built lazily and again after a fork, so prefork children never share a database
connection or an SMTP socket with their parent.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from mailproxy_models.instance import Instance, open_instance
from mailproxy_models.settings import get_settings

from .smtp_pool import SmtpConnectionPool


@dataclass
class WorkerRuntime:
    instance: Instance
    pool: SmtpConnectionPool
    name: str
    pid: int


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
        )
    return _runtime
