"""Celery tasks for returned mail: poll mailboxes, time out PEC receipts. Thin, safe to repeat."""

from __future__ import annotations

from celery import Celery

from mailproxy_models.db import now, session_scope
from mailproxy_models.mailboxes import mailboxes_due
from mailproxy_models.pec_timeouts import check_pec_timeouts
from mailproxy_models.wakeups import (
    MAINTENANCE_QUEUE,
    PEC_TIMEOUTS_TASK,
    POLL_DUE_TASK,
    POLL_MAILBOX_TASK,
)

from .mailbox_poll import poll_mailbox
from .runtime import worker_runtime


def register_inbound_tasks(app: Celery) -> None:
    @app.task(name=POLL_MAILBOX_TASK, acks_late=True, ignore_result=True, shared=False)
    def poll_one_mailbox(tenant_id: str, account_id: str, force: bool = False) -> int:
        """One poll of one account's mailbox (a lease keeps a second copy of this task out)."""
        return poll_mailbox(worker_runtime(), tenant_id, account_id, force).recorded

    @app.task(name=POLL_DUE_TASK, ignore_result=True, shared=False)
    def poll_mailboxes_due() -> int:
        """Beat: one poll task per mailbox that is due, so a slow or failing mailbox never
        holds up the others."""
        instance = worker_runtime().instance
        with session_scope(instance.sessions) as session:
            due = mailboxes_due(session, now())
        for tenant_id, account_id in due:
            poll_one_mailbox.apply_async((tenant_id, account_id), queue=MAINTENANCE_QUEUE)
        return len(due)

    @app.task(name=PEC_TIMEOUTS_TASK, ignore_result=True, shared=False)
    def pec_timeouts() -> int:
        """Beat: a pec_timeout event for each PEC message whose receipts are overdue."""
        instance = worker_runtime().instance
        settings = instance.settings
        with session_scope(instance.sessions) as session:
            return check_pec_timeouts(
                session, settings.pec_acceptance_timeout, settings.pec_delivery_timeout, now()
            )
