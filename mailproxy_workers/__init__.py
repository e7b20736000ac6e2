"""mailproxy's Celery workers: delivery, the sweeper, reports, bounce and receipt polling.

``celery -A mailproxy_workers worker`` and ``celery -A mailproxy_workers beat`` load ``app``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_prerun

from mailproxy_models.settings import Settings, get_settings
from mailproxy_models.wakeups import (
    MAINTENANCE_QUEUE,
    OFFLOAD_PURGE_TASK,
    PEC_TIMEOUTS_TASK,
    POLL_DUE_TASK,
    PURGE_TASK,
    SWEEP_TASK,
    SYNC_DUE_TASK,
    make_celery_app,
)

from .inbound_tasks import register_inbound_tasks
from .report_tasks import register_report_tasks
from .runtime import note_task_taken
from .tasks import register_tasks
from .worker_logging import install_worker_logging


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery_app(settings, name="mailproxy_workers")
    install_worker_logging(settings)
    app.conf.beat_schedule = {
        "sweep": {
            "task": SWEEP_TASK,
            "schedule": settings.sweep_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.sweep_interval},
        },
        "sync-reports": {
            "task": SYNC_DUE_TASK,
            "schedule": settings.report_sync_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.report_sync_interval},
        },
        "purge-reported": {
            "task": PURGE_TASK,
            "schedule": settings.cleanup_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.cleanup_interval},
        },
        "purge-offloaded-files": {
            "task": OFFLOAD_PURGE_TASK,
            "schedule": settings.cleanup_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.cleanup_interval},
        },
        "poll-mailboxes": {
            "task": POLL_DUE_TASK,
            "schedule": settings.imap_poll_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.imap_poll_interval},
        },
        "pec-timeouts": {
            "task": PEC_TIMEOUTS_TASK,
            "schedule": settings.pec_timeout_check_interval,
            "options": {
                "queue": MAINTENANCE_QUEUE,
                "expires": settings.pec_timeout_check_interval,
            },
        },
    }
    register_tasks(app)
    register_report_tasks(app)
    register_inbound_tasks(app)
    return app


@task_prerun.connect
def _heartbeat(sender: Any = None, **_: Any) -> None:
    """Each task taken from the broker proves this worker consumes (see /ready)."""
    request = getattr(sender, "request", None)
    note_task_taken(getattr(request, "hostname", None) or f"pid-{os.getpid()}")


app = create_worker_app(get_settings())
