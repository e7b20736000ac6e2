"""Wake-ups: the broker's only job. A lost wake-up delays mail until the sweeper runs; it
never loses mail, because the database row is the truth.

The API and the CLI publish by task name through a Celery app without tasks; the worker
package registers the tasks under the same names and queues.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from celery import Celery
from kombu import Queue

from .settings import Settings

log = logging.getLogger(__name__)

QUEUE_BY_PRIORITY = {
    0: "mail.immediate",
    1: "mail.high",
    2: "mail.medium",
    3: "mail.low",
}
MAINTENANCE_QUEUE = "mail.maintenance"
DELIVER_TASK = "mailproxy.deliver_due"
SWEEP_TASK = "mailproxy.sweep"
SYNC_DUE_TASK = "mailproxy.sync_reports_due"
SYNC_TENANT_TASK = "mailproxy.sync_tenant_reports"
PURGE_TASK = "mailproxy.purge_reported"
POLL_DUE_TASK = "mailproxy.poll_mailboxes_due"
POLL_MAILBOX_TASK = "mailproxy.poll_mailbox"
PEC_TIMEOUTS_TASK = "mailproxy.check_pec_timeouts"
OFFLOAD_PURGE_TASK = "mailproxy.purge_offloaded_files"
REDIS_SCHEMES = {"redis", "rediss", "sentinel"}
# A publish that cannot reach the broker gives up fast: the request that caused it must not
# hang, and the sweeper will find the messages anyway.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def make_celery_app(settings: Settings, name: str = "mailproxy") -> Celery:
    """A Celery app configured for mailproxy's broker, queues and delivery guarantees."""
    broker = settings.effective_broker_url
    if settings.is_embedded_broker:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        # kombu's SQLAlchemy transport passes transport options to create_engine(), so its
        # polling interval can only be set on the class.
        import kombu.transport.sqlalchemy as sqla_transport

        sqla_transport.Transport.polling_interval = settings.embedded_poll_interval
    elif broker.split("://", 1)[0] in REDIS_SCHEMES:
        # A worker must outlive a Redis restart, also with tasks in flight.
        from .redis_broker import use_channels_that_survive_restarts

        use_channels_that_survive_restarts()
    app = Celery(name, broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=MAINTENANCE_QUEUE,
        # Workers consume all of these unless started with -Q (dedicated pools per priority).
        task_queues=[
            Queue(name, routing_key=name)
            for name in [*QUEUE_BY_PRIORITY.values(), MAINTENANCE_QUEUE]
        ],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
    )
    return app


def wake_delivery(app: Celery, priorities: Iterable[int]) -> int:
    """Publish one delivery wake-up per priority; returns how many were published."""
    published = 0
    for priority in sorted(set(priorities)):
        try:
            app.send_task(
                DELIVER_TASK,
                args=[priority],
                queue=QUEUE_BY_PRIORITY[priority],
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
            published += 1
        except Exception:  # noqa: BLE001 - broker down: the sweeper catches up, never fail the caller
            log.warning(
                "could not publish a delivery wake-up for priority %s", priority, exc_info=True
            )
    return published


def wake_report_sync(app: Celery, tenant_ids: Iterable[str]) -> int:
    """Ask for a delivery-report sync of these tenants now; returns how many were published."""
    published = 0
    for tenant_id in tenant_ids:
        try:
            app.send_task(
                SYNC_TENANT_TASK,
                args=[tenant_id],
                queue=MAINTENANCE_QUEUE,
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
            published += 1
        except Exception:  # noqa: BLE001 - the beat's next look finds the tenant anyway
            log.warning("could not publish a report sync for tenant %s", tenant_id, exc_info=True)
    return published


def wake_mailbox_polls(app: Celery, mailboxes: Iterable[tuple[str, str]]) -> int:
    """Poll these (tenant, account) mailboxes now, whether due or not."""
    published = 0
    for tenant_id, account_id in mailboxes:
        try:
            app.send_task(
                POLL_MAILBOX_TASK,
                args=[tenant_id, account_id],
                kwargs={"force": True},
                queue=MAINTENANCE_QUEUE,
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
            published += 1
        except Exception:  # noqa: BLE001 - beat polls the mailbox at its next turn anyway
            log.warning("could not publish a poll of mailbox %s/%s", tenant_id, account_id)
    return published


class WakeupPublisher:
    """Publishes delivery wake-ups from a background thread, so no request waits on the broker.

    Requests only add priorities to a set; the thread publishes one wake-up per priority for
    everything gathered since its last round, which folds a burst of requests into a few
    messages on the broker. Wake-ups still pending when the process dies are lost, which
    costs at most one sweep interval of delay: the rows are already committed.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._pending: set[int] = set()
        self._busy = False
        self._cond = threading.Condition()
        self._pid: int | None = None

    def request(self, priorities: Iterable[int]) -> None:
        with self._cond:
            self._pending.update(priorities)
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="wakeup-publisher", daemon=True).start()
            self._cond.notify()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything requested so far has been published (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                batch, self._pending, self._busy = self._pending, set(), True
            try:
                wake_delivery(self.app, batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
