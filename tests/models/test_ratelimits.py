"""Rate limits at claim time, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from mailproxy_models.accounts import upsert_account
from mailproxy_models.claims import claim_due_messages
from mailproxy_models.db import now, session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.lifecycle import AttemptOutcome, record_attempts
from mailproxy_models.messages import Message
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
