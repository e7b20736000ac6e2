"""Celery tasks: thin, take plain values, safe to run twice (acks_late)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable

from celery import Celery
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailproxy_models.accounts import Account, SmtpEndpoint, smtp_endpoint
from mailproxy_models.claims import (
    ClaimedMessage,
    claim_due_messages,
    due_priorities,
    renew_claim,
)
from mailproxy_models.db import now, session_scope
from mailproxy_models.inbound import BouncePolicy
from mailproxy_models.lifecycle import (
    AttemptOutcome,
    Bookkeeping,
    apply_attempts,
    for_each_recipient,
    tenant_retry_schedules,
    write_bookkeeping,
)
from mailproxy_models.recipients import recipients_to_try
from mailproxy_models.tenants import Tenant
from mailproxy_models.wakeups import DELIVER_TASK, OFFLOAD_PURGE_TASK, SWEEP_TASK, wake_delivery

from .delivery import AttachmentContext, deliver_messages
from .runtime import WorkerRuntime, worker_runtime
from .storage.local import purge_expired_files
from .tenant_attachments import attachment_context

log = logging.getLogger(__name__)
RECORD_TRIES = 5
# The send log (rate limits), delivery totals and account health are written once per
# this many recorded messages: a worker killed meanwhile leaves at most these uncounted.
BOOK_EVERY = 20
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
    claimed_at = now()  # the lease runs from here at least
    with session_scope(runtime.instance.sessions) as session:
        claimed = claim_due_messages(
            session,
            priority,
            batch_size,
            settings.lease_seconds,
            current=claimed_at,
            rate_window_scale=settings.rate_window_scale,
        )
        endpoints, unusable = _endpoints(session, runtime, claimed)
        schedules = tenant_retry_schedules(session, {m.tenant_id for m in claimed})
        contexts, unprepared = _attachment_contexts(session, runtime, claimed)
    if len(claimed) == batch_size:
        # More may be due. Two wake-ups, not one: a backlog then spreads over every free
        # worker thread within a few batches instead of being drained by a single chain.
        # The cost is at most one empty claim per batch once the backlog is gone.
        for _ in range(FAN_OUT):
            wake_delivery(app, [priority])
    batch = _Batch(runtime, claimed, schedules, claimed_at)
    by_account: dict[tuple[str, str], list[ClaimedMessage]] = defaultdict(list)
    for message in claimed:
        by_account[(message.tenant_id, message.account_id)].append(message)
    for key, messages in by_account.items():
        endpoint = endpoints.get(key)
        if endpoint is None:
            failure = unusable.get(key) or AttemptOutcome(
                "permanent", f"account '{key[1]}' no longer exists"
            )
            for message in messages:
                batch.record(message, failure)
            continue
        ready: list[ClaimedMessage] = []
        for message in messages:
            unusable_tenant = unprepared.get(message.tenant_id)
            if unusable_tenant is not None and message.payload.get("attachments"):
                batch.record(message, unusable_tenant)
            else:
                ready.append(message)
        # Lazy: whether the claim still holds is asked just before each message is sent,
        # after the previous one was recorded and the claim renewed.
        still_held = (message for message in ready if batch.holds(message))
        context = contexts.get(key[0])
        for message, outcome in deliver_messages(runtime.pool, endpoint, still_held, context):
            log.info(
                "message %s/%s: %s (%s)",
                message.tenant_id,
                message.id,
                outcome.kind,
                outcome.description,
                extra={"message_id": message.id, "tenant_id": message.tenant_id},
            )
            batch.record(message, outcome)
    batch.finish()
    return len(claimed)


class _Batch:
    """A claimed batch being sent: each outcome is recorded as soon as it is known, in the
    same transaction that renews the claim on the messages not sent yet.

    Recording at once means a worker that dies loses at most the outcome of the message in
    flight; renewing means a slow server never lets the lease run out under a live worker.
    A message whose claim was lost (the worker stalled past its lease and another claimed
    it) is not sent by this worker."""

    def __init__(
        self,
        runtime: WorkerRuntime,
        claimed: list[ClaimedMessage],
        schedules: dict[str, list[int] | None],
        claimed_at: float,
    ) -> None:
        self.runtime = runtime
        self.schedules = schedules
        self.token = claimed[0].claim_token if claimed else ""
        self.unsent = {message.pk for message in claimed}
        self.held = set(self.unsent)
        self.lease_seconds = runtime.instance.settings.lease_seconds
        self.lease_until = claimed_at + self.lease_seconds
        self.owed = Bookkeeping()

    def _renew(self, session: Session) -> None:
        """Renew the claim once half the lease is gone: before that no other worker can
        have taken a message, so the claim needs no check either."""
        current = now()
        if self.lease_until - current > self.lease_seconds / 2:
            return
        self.held = renew_claim(session, sorted(self.unsent), self.token, self.lease_seconds)
        self.lease_until = current + self.lease_seconds

    def holds(self, message: ClaimedMessage) -> bool:
        return message.pk in self.held

    def record(self, message: ClaimedMessage, outcome: AttemptOutcome) -> None:
        self.unsent.discard(message.pk)
        if not self.holds(message):
            # Never sent (a message is sent only while held): it is another worker's now,
            # which records its own outcome.
            return
        tried = recipients_to_try(message.payload, message.recipient_outcomes)
        outcome = for_each_recipient(outcome, tried)
        settings = self.runtime.instance.settings

        owed: list[Bookkeeping] = []  # of the try that committed

        def write(session: Session) -> None:
            owed[:] = [
                apply_attempts(
                    session,
                    {message.pk: outcome},
                    self.runtime.name,
                    settings.retry_schedule,
                    tenant_schedules=self.schedules,
                    bounce_policy=BouncePolicy(
                        settings.soft_bounce_limit, settings.soft_bounce_window_days * 86400
                    ),
                )
            ]
            self._renew(session)

        self._write(write)
        self.owed.add(owed[0])
        if self.owed.messages >= BOOK_EVERY:
            self.finish()
        lost = self.unsent - self.held
        if lost:
            log.warning(
                "claim lost on %d messages of this batch (lease expired); not sending them",
                len(lost),
            )
            self.unsent -= lost

    def finish(self) -> None:
        """Write the bookkeeping owed for the messages recorded so far."""
        if self.owed.messages or self.owed.failing:
            owed, self.owed = self.owed, Bookkeeping()
            self._write(lambda session: write_bookkeeping(session, owed))

    def _write(self, write: Callable[[Session], None]) -> None:
        """One transaction, retried on a lost database connection: these messages already
        left, and an outcome not written means they would be sent again once their lease
        expires."""
        for attempt in range(RECORD_TRIES):
            try:
                with session_scope(self.runtime.instance.sessions) as session:
                    write(session)
                return
            except DBAPIError as exc:
                if attempt == RECORD_TRIES - 1 or not exc.connection_invalidated:
                    # Not written: the message may be sent again once its lease runs
                    # out. Send nothing more of this batch.
                    self.held = set()
                    raise
                log.warning("database connection lost while recording outcomes; retrying")
                time.sleep(0.2 * (attempt + 1))


def _endpoints(
    session: Session, runtime: WorkerRuntime, claimed: list[ClaimedMessage]
) -> tuple[dict[tuple[str, str], SmtpEndpoint], dict[tuple[str, str], AttemptOutcome]]:
    """Connection settings (password decrypted) of each account the batch uses, and the
    outcome for the messages of an account whose settings cannot be used."""
    endpoints = {}
    unusable = {}
    for key in {(m.tenant_id, m.account_id) for m in claimed}:
        try:
            account = session.get(Account, key)
            if account is not None:
                endpoints[key] = smtp_endpoint(account, runtime.instance.box)
        except Exception as exc:
            log.exception("account %s/%s: settings cannot be used", *key)
            unusable[key] = AttemptOutcome(
                "temporary",
                f"account '{key[1]}': its settings cannot be used ({type(exc).__name__}: "
                f"{exc}); check the account, the message is tried again on the retry schedule",
                details={"exception": type(exc).__name__},
            )
    return endpoints, unusable


def _attachment_contexts(
    session: Session, runtime: WorkerRuntime, claimed: list[ClaimedMessage]
) -> tuple[dict[str, AttachmentContext], dict[str, AttemptOutcome]]:
    """Per tenant whose messages carry attachments: sources and large-file policy; and the
    outcome for the attachment messages of a tenant whose settings cannot be applied (the
    other tenants of the batch go on)."""
    contexts = {}
    unprepared = {}
    for tenant_id in {m.tenant_id for m in claimed if m.payload.get("attachments")}:
        try:
            tenant = session.get(Tenant, tenant_id)
            if tenant is not None:
                contexts[tenant_id] = attachment_context(tenant, runtime)
        except Exception as exc:
            log.exception("tenant %s: attachment settings cannot be applied", tenant_id)
            unprepared[tenant_id] = AttemptOutcome(
                "temporary",
                f"attachments cannot be prepared: the settings of tenant '{tenant_id}' "
                f"cannot be applied ({type(exc).__name__}: {exc}); correct the tenant's "
                "attachment settings (large_file_config, attachment sources); the message is "
                "tried again on the retry schedule",
                details={"exception": type(exc).__name__},
            )
    return contexts, unprepared
