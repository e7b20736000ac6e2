"""Celery tasks for delivery reports and retention: thin, by tenant id, safe to repeat."""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from mailproxy_models.db import now, session_scope
from mailproxy_models.inbound import purge_inbound_log
from mailproxy_models.ratelimits import LONGEST_WINDOW
from mailproxy_models.reports import purge_reported, tenants_due_for_sync
from mailproxy_models.send_log import purge_send_log
from mailproxy_models.wakeups import (
    MAINTENANCE_QUEUE,
    PURGE_TASK,
    SYNC_DUE_TASK,
    SYNC_TENANT_TASK,
)

from .report_sync import sync_tenant
from .runtime import worker_runtime


def register_report_tasks(app: Celery) -> None:
    @app.task(name=SYNC_TENANT_TASK, acks_late=True, ignore_result=True, shared=False)
    def sync_tenant_reports(tenant_id: str) -> int:
        """One batch for one tenant. With more waiting, the task queues itself again at the
        back of the queue, so a tenant's backlog never holds up another tenant's reports."""
        result = sync_tenant(worker_runtime(), tenant_id)
        if result.more:
            sync_tenant_reports.apply_async((tenant_id,), queue=MAINTENANCE_QUEUE)
        return result.acknowledged

    @app.task(name=SYNC_DUE_TASK, ignore_result=True, shared=False)
    def sync_reports_due() -> list[str]:
        """Beat: one sync task per tenant that has reports due or a heartbeat due."""
        instance = worker_runtime().instance
        with session_scope(instance.sessions) as session:
            due = tenants_due_for_sync(session, instance.settings.report_heartbeat, now())
        for tenant_id in due:
            sync_tenant_reports.apply_async((tenant_id,), queue=MAINTENANCE_QUEUE)
        return due

    @app.task(name=PURGE_TASK, ignore_result=True, shared=False)
    def purge_reported_messages() -> int:
        """Beat: remove reported messages older than the retention period, the log of
        mail read from mailboxes older than its own, and the send log past the longest
        rate window, in batches."""
        instance = worker_runtime().instance
        settings = instance.settings
        _purge_all(instance.sessions, purge_send_log, now() - LONGEST_WINDOW)
        _purge_all(
            instance.sessions,
            purge_inbound_log,
            now() - settings.inbound_log_retention_days * 86400,
        )
        return _purge_all(
            instance.sessions, purge_reported, now() - settings.retention_days * 86400
        )


def _purge_all(
    sessions: sessionmaker[Session], purge: Callable[[Session, float], int], older_than: float
) -> int:
    """Run a purge in batches, one transaction each, until nothing is left."""
    purged = 0
    while True:
        with session_scope(sessions) as session:
            batch = purge(session, older_than)
        purged += batch
        if not batch:
            return purged
