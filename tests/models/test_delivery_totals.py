"""Delivery totals on SQLite and PostgreSQL: added in the recording transaction, never lowered."""

from __future__ import annotations

import threading

import pytest

from mailproxy_models.claims import claim_due_messages
from mailproxy_models.db import now, session_scope
from mailproxy_models.delivery_metrics import delivery_snapshot
from mailproxy_models.delivery_totals import (
    LATENCY_BUCKETS,
    Outcome,
    count_outcomes,
    read_latency,
    read_totals,
)
from mailproxy_models.lifecycle import AttemptOutcome, hold_over_limit, record_attempts
from mailproxy_models.messages import delete_messages
from tests.models.factories import database, enqueue, message, tenant_with_account


def test_outcomes_add_up_per_tenant_account_and_kind(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        with session_scope(sessions) as session:
            count_outcomes(session, [("acme", "main", "bounced")] * 2)
            count_outcomes(
                session,
                [Outcome("acme", "main", "sent", 0.5), Outcome("acme", "main", "sent", 40.0)],
            )
        with session_scope(sessions) as session:
            count_outcomes(session, [("acme", "main", "bounced"), ("acme", "other", "failed")])
            count_outcomes(session, [])
        with session_scope(sessions) as session:
            assert read_totals(session) == {
                ("acme", "main", "bounced"): 3,
                ("acme", "main", "sent"): 2,
                ("acme", "other", "failed"): 1,
            }
            histogram = read_latency(session)["acme"]
        assert histogram.count == 2 and histogram.total_seconds == pytest.approx(40.5)
        assert histogram.cumulative[LATENCY_BUCKETS.index(1)] == 1
        assert histogram.cumulative[LATENCY_BUCKETS.index(60)] == 2


def test_an_unknown_kind_is_refused(sqlite_url):
    with database(sqlite_url) as sessions, session_scope(sessions) as session:
        with pytest.raises(ValueError, match="unknown outcome kind"):
            count_outcomes(session, [("acme", "main", "opened")])


def test_recorded_attempts_are_counted_once_and_survive_deletion(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message(f"m{i}") for i in range(3)])
        with session_scope(sessions) as session:
            claimed = claim_due_messages(session, 2, 10, 30)
        sent = AttemptOutcome("sent", "ok", 250)
        outcomes = {
            claimed[0].pk: sent,
            claimed[1].pk: AttemptOutcome("permanent", "no", 550),
            claimed[2].pk: AttemptOutcome("temporary", "later", 451),
        }
        with session_scope(sessions) as session:
            record_attempts(session, outcomes, "w1", [60])
        # A second delivery of a message already sent (its worker lost the lease) is an
        # event, not a second sent message.
        with session_scope(sessions) as session:
            record_attempts(session, {claimed[0].pk: sent}, "w2", [60])
        with session_scope(sessions) as session:
            delete_messages(session, "acme", ["m0", "m1", "m2"])
        with session_scope(sessions) as session:
            assert read_totals(session) == {
                ("acme", "main", "sent"): 1,
                ("acme", "main", "failed"): 1,
                ("acme", "main", "deferred"): 1,
            }
            assert read_latency(session)["acme"].count == 1


def test_latency_of_a_scheduled_message_counts_from_the_time_it_was_scheduled_for(
    database_url,
):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        in_an_hour = now() + 3600
        enqueue(sessions, [message("later", deferred_ts=in_an_hour), message("now")])
        with session_scope(sessions) as session:
            claimed = claim_due_messages(session, 2, 10, 30, current=in_an_hour + 1)
            sent = AttemptOutcome("sent", "ok", 250)
            outcomes = {c.pk: sent for c in claimed}
            record_attempts(session, outcomes, "w1", [60], current=in_an_hour + 5)
        with session_scope(sessions) as session:
            histogram = read_latency(session)["acme"]
        # 5 s for the scheduled one, an hour and 5 s for the one that waited an hour.
        assert histogram.count == 2
        assert histogram.total_seconds == pytest.approx(5 + 3605, abs=2)
        assert histogram.cumulative[LATENCY_BUCKETS.index(30)] == 1


def test_messages_over_a_rate_limit_are_counted_as_held_or_refused(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message(f"m{i}") for i in range(3)])
        with session_scope(sessions) as session:
            claimed = claim_due_messages(session, 2, 10, 30)
            current = now()
            hold_over_limit(session, [claimed[0].pk, claimed[1].pk], "defer", current + 60, current)
            hold_over_limit(session, [claimed[2].pk], "reject", current + 60, current)
        with session_scope(sessions) as session:
            assert read_totals(session) == {
                ("acme", "main", "rate_limited"): 2,
                ("acme", "main", "failed"): 1,
            }
            snapshot = delivery_snapshot(session, current + 61)
        assert snapshot.due[2] == 2 and snapshot.oldest_due_age[2] == pytest.approx(1, abs=0.01)


def test_concurrent_recorders_lose_no_count(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        tenant_with_account(sessions, "beta")
        keys = [("acme", "main", "sent"), ("beta", "main", "sent"), ("acme", "main", "failed")]
        errors: list[BaseException] = []

        def record(order: list[tuple[str, str, str]]) -> None:
            try:
                for _ in range(20):
                    with session_scope(sessions) as session:
                        count_outcomes(session, order)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=record, args=(keys if i % 2 else keys[::-1],)) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with session_scope(sessions) as session:
            assert read_totals(session) == dict.fromkeys(keys, 80)
