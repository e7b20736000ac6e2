"""Celery tasks: thin, take plain values, safe to run twice (acks_late)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from celery import Celery
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailproxy_models.accounts import Account, SmtpEndpoint, smtp_endpoint
from mailproxy_models.claims import ClaimedMessage, claim_due_messages, due_priorities
from mailproxy_models.db import now, session_scope
from mailproxy_models.lifecycle import AttemptOutcome, record_attempts
from mailproxy_models.tenants import Tenant
from mailproxy_models.wakeups import DELIVER_TASK, OFFLOAD_PURGE_TASK, SWEEP_TASK, wake_delivery

from .delivery import AttachmentContext, deliver_messages
from .runtime import WorkerRuntime, worker_runtime
from .storage.local import purge_expired_files
from .tenant_attachments import attachment_context

log = logging.getLogger(__name__)
# Outcomes are written in small groups: a worker killed mid-batch re-sends at most this many.
RECORD_EVERY = 20
RECORD_TRIES = 5
FAN_OUT = 2


def register_tasks(app: Celery) -> None:
    @app.task(name=DELIVER_TASK, acks_late=True, ignore_result=True, shared=False)
    def deliver_due(priority: int) -> int:
        """Claim one batch of due messages of this priority and send it."""
        return deliver_batch(app, worker_runtime(), priority)

    @app.task(name=SWEEP_TASK, ignore_result=True, shared=False)
    def sweep() -> list[int]:
        """Wake delivery for every priority with due or abandoned messages."""
        instance = worker_runtime().instance
        with session_scope(instance.sessions) as session:
            priorities = due_priorities(session)
        wake_delivery(app, priorities)
        return priorities

    @app.task(name=OFFLOAD_PURGE_TASK, ignore_result=True, shared=False)
    def purge_offloaded_files() -> int:
        """Beat: remove large files kept in local storage once their links have expired."""
        root = worker_runtime().instance.settings.effective_offload_local_dir
        purged = purge_expired_files(root, now())
        if purged.files:
            log.info("removed %d expired offloaded files (%d bytes)", purged.files, purged.bytes)
        return purged.files


def deliver_batch(app: Celery, runtime: WorkerRuntime, priority: int) -> int:
    settings = runtime.instance.settings
    batch_size = settings.delivery_batch_size
    with session_scope(runtime.instance.sessions) as session:
        claimed = claim_due_messages(
            session,
            priority,
            batch_size,
            settings.lease_seconds,
            rate_window_scale=settings.rate_window_scale,
        )
        endpoints = _endpoints(session, runtime, claimed)
        contexts = _attachment_contexts(session, runtime, claimed)
    if len(claimed) == batch_size:
        # More may be due. Two wake-ups, not one: a backlog then spreads over every free
        # worker thread within a few batches instead of being drained by a single chain.
        # The cost is at most one empty claim per batch once the backlog is gone.
        for _ in range(FAN_OUT):
            wake_delivery(app, [priority])
    by_account: dict[tuple[str, str], list[ClaimedMessage]] = defaultdict(list)
    for message in claimed:
        by_account[(message.tenant_id, message.account_id)].append(message)
    pending: dict[int, AttemptOutcome] = {}
    for key, messages in by_account.items():
        endpoint = endpoints.get(key)
        if endpoint is None:
            for message in messages:
                pending[message.pk] = AttemptOutcome(
                    "permanent", f"account '{message.account_id}' no longer exists"
                )
            continue
        context = contexts.get(key[0])
        for message, outcome in deliver_messages(runtime.pool, endpoint, messages, context):
            log.info(
                "message %s/%s: %s (%s)",
                message.tenant_id,
                message.id,
                outcome.kind,
                outcome.description,
                extra={"message_id": message.id, "tenant_id": message.tenant_id},
            )
            pending[message.pk] = outcome
            if len(pending) >= RECORD_EVERY:
                _record(runtime, pending)
    _record(runtime, pending)
    return len(claimed)


def _endpoints(
    session: Session, runtime: WorkerRuntime, claimed: list[ClaimedMessage]
) -> dict[tuple[str, str], SmtpEndpoint]:
    """Connection settings (password decrypted) of each account the batch uses."""
    endpoints = {}
    for key in {(m.tenant_id, m.account_id) for m in claimed}:
        account = session.get(Account, key)
        if account is not None:
            endpoints[key] = smtp_endpoint(account, runtime.instance.box)
    return endpoints


def _attachment_contexts(
    session: Session, runtime: WorkerRuntime, claimed: list[ClaimedMessage]
) -> dict[str, AttachmentContext]:
    """Per tenant whose messages carry attachments: sources and large-file policy."""
    contexts = {}
    for tenant_id in {m.tenant_id for m in claimed if m.payload.get("attachments")}:
        tenant = session.get(Tenant, tenant_id)
        if tenant is not None:
            contexts[tenant_id] = attachment_context(tenant, runtime)
    return contexts


def _record(runtime: WorkerRuntime, outcomes: dict[int, AttemptOutcome]) -> None:
    """Write outcomes, retrying on a lost database connection: these messages already left,
    and an outcome not written means they would be sent again once their lease expires."""
    if not outcomes:
        return
    settings = runtime.instance.settings
    for attempt in range(RECORD_TRIES):
        try:
            with session_scope(runtime.instance.sessions) as session:
                record_attempts(session, outcomes, runtime.name, settings.retry_schedule)
            break
        except DBAPIError as exc:
            if attempt == RECORD_TRIES - 1 or not exc.connection_invalidated:
                raise
            log.warning("database connection lost while recording outcomes; retrying")
            time.sleep(0.2 * (attempt + 1))
    outcomes.clear()
