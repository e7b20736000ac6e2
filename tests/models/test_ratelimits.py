"""Rate limits at claim time, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from mailproxy_models.accounts import upsert_account
from mailproxy_models.claims import claim_due_messages
from mailproxy_models.db import now, session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.lifecycle import AttemptOutcome, record_attempts
from mailproxy_models.messages import Message
from mailproxy_models.ratelimits import LONGEST_WINDOW
from mailproxy_models.send_log import SendLogEntry, purge_send_log
from mailproxy_models.tenants import update_tenant
from tests.models.factories import BOX, database, enqueue, message, tenant_with_account


def _limit(sessions, **limits):
    with session_scope(sessions) as session:
        upsert_account(session, BOX, {"tenant_id": "acme", "id": "main", **limits})


def _claim(sessions, current, limit=50):
    with session_scope(sessions) as session:
        return claim_due_messages(session, 2, limit, 300, current)


def _send(sessions, claimed, current):
    sent = AttemptOutcome("sent", "ok", 250, None, "OK")
    with session_scope(sessions) as session:
        record_attempts(session, {m.pk: sent for m in claimed}, "w", [60], current)


def test_claims_stop_at_the_limit_counting_what_is_in_flight(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _limit(sessions, limit_per_minute=5)
        enqueue(sessions, [message(f"m{i}") for i in range(8)])
        start = now()
        first = _claim(sessions, start, limit=3)
        second = _claim(sessions, start + 1)  # the first 3 are in flight, not yet recorded
        assert len(first) == 3 and len(second) == 2
        _send(sessions, first + second, start + 2)
        assert _claim(sessions, start + 3) == []


def test_over_the_limit_waits_for_the_window_without_spending_attempts(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _limit(sessions, limit_per_minute=2)
        enqueue(sessions, [message(f"m{i}") for i in range(3)])
        start = now()
        claimed = _claim(sessions, start)
        assert [m.id for m in claimed] == ["m0", "m1"]
        with session_scope(sessions) as session:
            waiting = session.scalar(select(Message).where(Message.id == "m2"))
            assert waiting.status == "deferred" and waiting.attempts == 0
            event = session.scalar(
                select(MessageEvent).where(MessageEvent.message_pk == waiting.pk)
            )
            assert event.kind == "rate_limited"
        _send(sessions, claimed, start)
        assert _claim(sessions, start + 30) == []  # not due yet, and no busy polling
        (later,) = _claim(sessions, start + 61)
        assert later.id == "m2"


def test_reject_behavior_ends_the_extra_messages_in_error(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _limit(sessions, limit_per_hour=1, limit_behavior="reject")
        enqueue(sessions, [message("m0"), message("m1")])
        assert [m.id for m in _claim(sessions, now())] == ["m0"]
        with session_scope(sessions) as session:
            refused = session.scalar(select(Message).where(Message.id == "m1"))
            assert refused.status == "error" and "rate limit" in refused.error


def test_failed_attempts_do_not_use_up_the_window(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _limit(sessions, limit_per_minute=1)
        enqueue(sessions, [message("m0")])
        start = now()
        (first,) = _claim(sessions, start)
        failed = AttemptOutcome("permanent", "550", 550, None, "no")
        with session_scope(sessions) as session:
            record_attempts(session, {first.pk: failed}, "w", [60], start)
        enqueue(sessions, [message("m1")])
        assert [m.id for m in _claim(sessions, start + 1)] == ["m1"]


def _tenant_limits(sessions, **rate_limits):
    with session_scope(sessions) as session:
        update_tenant(session, BOX, "acme", {"rate_limits": rate_limits})
        upsert_account(
            session, BOX, {"tenant_id": "acme", "id": "second", "host": "127.0.0.1", "port": 25}
        )


def _events(sessions, kind):
    with session_scope(sessions) as session:
        return list(
            session.scalars(
                select(Message.id)
                .join(MessageEvent, MessageEvent.message_pk == Message.pk)
                .where(MessageEvent.kind == kind)
                .order_by(Message.id)
            )
        )


def test_a_tenant_limit_spans_all_its_accounts(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _tenant_limits(sessions, per_minute=4)
        enqueue(
            sessions,
            [message(f"a{i}", account_id="main") for i in range(3)]
            + [message(f"b{i}", account_id="second") for i in range(3)],
        )
        start = now()
        claimed = _claim(sessions, start)
        assert [m.id for m in claimed] == ["a0", "a1", "a2", "b0"]  # the oldest due first
        assert _events(sessions, "rate_limited") == ["b1", "b2"]
        with session_scope(sessions) as session:
            held = session.scalars(select(Message).where(Message.id.in_(["b1", "b2"])))
            assert {(m.status, m.attempts) for m in held} == {("deferred", 0)}
        _send(sessions, claimed, start + 1)
        assert _claim(sessions, start + 30) == []  # both accounts wait for the tenant's window
        assert sorted(m.id for m in _claim(sessions, start + 62)) == ["b1", "b2"]


def test_a_tenant_limit_counts_what_other_claims_hold_in_flight(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _tenant_limits(sessions, per_hour=3)
        enqueue(sessions, [message("a0", account_id="main"), message("a1", account_id="main")])
        start = now()
        assert len(_claim(sessions, start)) == 2  # on the wire, not recorded yet
        enqueue(sessions, [message(f"b{i}", account_id="second") for i in range(3)])
        assert [m.id for m in _claim(sessions, start + 1)] == ["b0"]
        assert _events(sessions, "rate_limited") == ["b1", "b2"]


def test_the_tenant_limit_and_the_account_limit_both_hold(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _tenant_limits(sessions, per_minute=3)
        _limit(sessions, limit_per_minute=1)
        enqueue(
            sessions,
            [message(f"a{i}", account_id="main") for i in range(2)]
            + [message(f"b{i}", account_id="second") for i in range(3)],
        )
        claimed = _claim(sessions, now())
        assert [m.id for m in claimed] == ["a0", "b0", "b1"]
        assert _events(sessions, "rate_limited") == ["a1", "b2"]


def test_over_the_tenant_limit_an_account_that_rejects_ends_its_messages_in_error(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _tenant_limits(sessions, per_day=1)
        _limit(sessions, limit_behavior="reject")
        enqueue(sessions, [message("a0", account_id="main"), message("a1", account_id="main")])
        assert [m.id for m in _claim(sessions, now())] == ["a0"]
        with session_scope(sessions) as session:
            refused = session.scalar(select(Message).where(Message.id == "a1"))
            assert refused.status == "error" and "rate limit" in refused.error


def test_tenant_rate_limits_without_a_positive_number_limit_nothing(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _tenant_limits(sessions, per_minute=None, per_hour=0)
        enqueue(sessions, [message(f"m{i}", account_id="main") for i in range(5)])
        assert len(_claim(sessions, now())) == 5


def test_retention_purges_the_send_log_past_the_longest_window_only(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message(f"m{i}") for i in range(3)])
        start = now()
        claimed = _claim(sessions, start)
        _send(sessions, claimed[:2], start - LONGEST_WINDOW - 5)  # sent over a day ago
        _send(sessions, claimed[2:], start)
        with session_scope(sessions) as session:
            assert purge_send_log(session, start - LONGEST_WINDOW) == 2
            assert purge_send_log(session, start - LONGEST_WINDOW) == 0
            assert session.scalar(select(func.count()).select_from(SendLogEntry)) == 1
