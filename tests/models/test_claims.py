"""Claims and the life of a message, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import select

from mailproxy_models.claims import claim_due_messages, due_priorities
from mailproxy_models.db import now, session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.lifecycle import AttemptOutcome, record_attempts
from mailproxy_models.messages import Message
from tests.models.factories import database, enqueue, message, tenant_with_account

SCHEDULE = [60, 300]


def _claim(sessions, priority=2, limit=10, lease=30, current=None):
    with session_scope(sessions) as session:
        return claim_due_messages(session, priority, limit, lease, current)


def _status(sessions, msg_id):
    with session_scope(sessions) as session:
        return session.scalar(select(Message).where(Message.id == msg_id))


def test_claims_are_disjoint_and_in_queue_order(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message(f"m{i}") for i in range(5)])
        first, second, third = (
            _claim(sessions, limit=3),
            _claim(sessions, limit=3),
            _claim(sessions),
        )
        assert [m.id for m in first] == ["m0", "m1", "m2"]
        assert [m.id for m in second] == ["m3", "m4"]
        assert third == []


def test_claim_takes_only_its_priority_and_due_messages(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(
            sessions,
            [
                message("urgent", priority=0),
                message("later", deferred_ts=now() + 3600),
                message("normal"),
            ],
        )
        assert [m.id for m in _claim(sessions, priority=0)] == ["urgent"]
        assert [m.id for m in _claim(sessions, priority=2, lease=7200)] == ["normal"]
        assert [m.id for m in _claim(sessions, priority=2, current=now() + 3601)] == ["later"]


def test_expired_lease_makes_the_message_claimable_again(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1")])
        assert len(_claim(sessions, lease=30)) == 1
        with session_scope(sessions) as session:
            assert due_priorities(session) == []
            assert due_priorities(session, now() + 31) == [2]
        again = _claim(sessions, current=now() + 31)
        assert [m.id for m in again] == ["m1"]


def test_concurrent_claimers_never_share_a_message(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message(f"m{i}") for i in range(200)])
        claimed: list[str] = []
        lock = threading.Lock()

        def claimer() -> None:
            while batch := _claim(sessions, limit=7):
                with lock:
                    claimed.extend(m.id for m in batch)

        threads = [threading.Thread(target=claimer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(claimed) == sorted(f"m{i}" for i in range(200))


def test_250_makes_it_sent_with_the_answer_on_the_event(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1")])
        (claimed,) = _claim(sessions)
        outcome = AttemptOutcome("sent", "accepted", 250, "2.0.0", "2.0.0 OK queued as X")
        with session_scope(sessions) as session:
            record_attempts(session, {claimed.pk: outcome}, "w1", SCHEDULE)
        row = _status(sessions, "m1")
        assert row.status == "sent" and row.sent_ts and row.claim_token is None
        with session_scope(sessions) as session:
            event = session.scalar(select(MessageEvent))
            assert (event.kind, event.smtp_code, event.smtp_text, event.worker) == (
                "sent",
                250,
                "2.0.0 OK queued as X",
                "w1",
            )


def test_temporary_failures_follow_the_schedule_then_end_in_error(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1")])
        current = now()
        failure = AttemptOutcome("temporary", "451 try later", 451, "4.7.1", "4.7.1 later")
        for attempt, delay in enumerate(SCHEDULE, start=1):
            (claimed,) = _claim(sessions, current=current)
            with session_scope(sessions) as session:
                record_attempts(session, {claimed.pk: failure}, "w1", SCHEDULE, current)
            row = _status(sessions, "m1")
            assert (row.status, row.attempts) == ("deferred", attempt)
            assert row.deferred_ts == current + delay
            assert _claim(sessions, current=current + delay - 1) == []
            current += delay
        (claimed,) = _claim(sessions, current=current)
        with session_scope(sessions) as session:
            record_attempts(session, {claimed.pk: failure}, "w1", SCHEDULE, current)
        row = _status(sessions, "m1")
        assert row.status == "error" and "gave up after 3 attempts" in row.error


def test_permanent_failure_is_an_error_at_once(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1")])
        (claimed,) = _claim(sessions)
        outcome = AttemptOutcome("permanent", "550 no such user", 550, "5.1.1", "5.1.1 no")
        with session_scope(sessions) as session:
            record_attempts(session, {claimed.pk: outcome}, "w1", SCHEDULE)
        row = _status(sessions, "m1")
        assert row.status == "error" and row.error_ts and "550" in row.error


def test_a_second_delivery_after_a_lost_lease_keeps_sent_and_is_logged(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1")])
        (claimed,) = _claim(sessions)
        sent = AttemptOutcome("sent", "accepted", 250, None, "OK")
        failed = AttemptOutcome("permanent", "550", 550, None, "no")
        for outcome in (sent, failed):
            with session_scope(sessions) as session:
                record_attempts(session, {claimed.pk: outcome}, "w1", SCHEDULE)
        row = _status(sessions, "m1")
        assert row.status == "sent"
        with session_scope(sessions) as session:
            kinds = [
                e.kind for e in session.scalars(select(MessageEvent).order_by(MessageEvent.pk))
            ]
        assert kinds == ["sent", "error"]


def test_concurrent_posts_of_the_same_ids_store_each_once(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        batch = [message(f"m{i}") for i in range(300)]
        results = []

        def post() -> None:
            results.append(enqueue(sessions, batch))

        threads = [threading.Thread(target=post) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sum(r.queued for r in results) == 300
        assert sum(len(r.rejected) for r in results) == 600
        with session_scope(sessions) as session:
            assert len(session.scalars(select(Message.pk)).all()) == 300


def test_an_account_failure_spends_no_attempt_and_marks_the_account_failing(database_url):
    from mailproxy_models.accounts import Account

    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1")])
        (claimed,) = _claim(sessions)
        refused = AttemptOutcome("account", "authentication failed for account 'main': 535", 535)
        current = now()
        with session_scope(sessions) as session:
            record_attempts(session, {claimed.pk: refused}, "w1", SCHEDULE, current)
        row = _status(sessions, "m1")
        assert (row.status, row.attempts) == ("deferred", 0) and row.due_at > current
        with session_scope(sessions) as session:
            account = session.get(Account, ("acme", "main"))
            assert account.failing_since == current and "535" in account.failing_reason
        (again,) = _claim(sessions, current=row.due_at)
        sent = AttemptOutcome("sent", "accepted", 250, None, "OK")
        with session_scope(sessions) as session:
            record_attempts(session, {again.pk: sent}, "w1", SCHEDULE, row.due_at)
        with session_scope(sessions) as session:
            account = session.get(Account, ("acme", "main"))
            assert account.failing_since is None and account.failing_reason is None


def test_a_tenants_own_retry_schedule_wins(database_url):
    from mailproxy_models.tenants import Tenant

    with database(database_url) as sessions:
        tenant_with_account(sessions)
        with session_scope(sessions) as session:
            session.get(Tenant, "acme").retry_schedule = [7]
        enqueue(sessions, [message("m1")])
        (claimed,) = _claim(sessions)
        failure = AttemptOutcome("temporary", "451", 451, None, "later")
        current = now()
        with session_scope(sessions) as session:
            record_attempts(session, {claimed.pk: failure}, "w1", SCHEDULE, current)
        assert _status(sessions, "m1").deferred_ts == current + 7
