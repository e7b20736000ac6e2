"""What a bounce does to the suppression list, decided by its reason, on SQLite and PostgreSQL;
the same decision for a refusal during delivery; what a message shows of its returned mail."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sqlalchemy import select

from mailproxy_models.db import now, session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.inbound import (
    BouncePolicy,
    Correlation,
    InboundEvent,
    InboundFacts,
    record_inbound_mail,
    record_synchronous_refusal,
)
from mailproxy_models.messages import Message, message_records
from mailproxy_models.returned_mail import latest_returned_mail
from mailproxy_models.suppression_list import list_suppressed
from mailproxy_workers.inbound.classify import classify
from tests.models.factories import database, enqueue, message, tenant_with_account
from tests.support.returned_mail import dsn

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "bounces"


def _about(facts: InboundFacts, msg_id: str) -> InboundFacts:
    return dataclasses.replace(facts, correlation=Correlation(ids=(msg_id,)))


def _bounce(recipient: str, status: str, text: str, msg_id: str) -> InboundFacts:
    raw = dsn("a@example.com", recipient, status, text, {"X-Mailproxy-ID": msg_id})
    return _about(classify(raw), msg_id)


def _record(sessions, facts, key, policy=BouncePolicy(), tenant="acme"):
    with session_scope(sessions) as session:
        return record_inbound_mail(session, tenant, "main", key, facts, now(), policy)


def _listed(sessions, tenant="acme") -> list[str]:
    with session_scope(sessions) as session:
        entries, _ = list_suppressed(session, tenant)
        return [entry.address for entry in entries]


def _pk(sessions, msg_id: str) -> int:
    with session_scope(sessions) as session:
        return session.scalars(select(Message.pk).where(Message.id == msg_id)).one()


def test_a_bounce_naming_an_address_the_message_did_not_carry_suppresses_nothing(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1", to=["someone.else@example.net"])])
        # A real "550 5.1.1 user unknown" report, for an address m1 was never sent to.
        raw = (SAMPLES / "rfc3464_postfix_hard_single.eml").read_bytes()
        facts = _about(classify(raw), "m1")
        assert [e.details["reason"] for e in facts.events] == ["user_unknown"]
        result = _record(sessions, facts, "k1")
        assert result.outcome == "recorded" and result.suppressed == ()
        assert _listed(sessions) == []
        with session_scope(sessions) as session:
            (event,) = session.scalars(select(MessageEvent)).all()
            assert event.details["recipient_unmatched"] is True


def test_the_reason_decides_not_the_status_class(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(
            sessions,
            [
                message("gone", to=["gone@example.org"]),
                message("full", to=["full@example.org"]),
                message("spam", to=["reader@example.org"]),
            ],
        )
        gone = _bounce("gone@example.org", "5.1.1", "550 5.1.1 User unknown", "gone")
        full = _bounce("full@example.org", "5.2.2", "552 5.2.2 Mailbox full", "full")
        spam = _bounce("reader@example.org", "5.7.1", "554 5.7.1 Message rejected as spam", "spam")
        assert _record(sessions, gone, "k1").suppressed == ("gone@example.org",)
        # Both 5.x.x: a full mailbox and a spam verdict leave the address alone.
        assert _record(sessions, full, "k2").suppressed == ()
        assert _record(sessions, spam, "k3").suppressed == ()
        assert _listed(sessions) == ["gone@example.org"]
        # With a soft-bounce limit of 1, the full mailbox counts and is suppressed; spam
        # never counts: the address is fine, the message was the problem.
        once = BouncePolicy(soft_limit=1, soft_window=86400)
        full_again = dataclasses.replace(full, summary="again")
        spam_again = dataclasses.replace(spam, summary="again")
        assert _record(sessions, full_again, "k4", once).suppressed == ("full@example.org",)
        assert _record(sessions, spam_again, "k5", once).suppressed == ()


def test_the_sender_is_never_suppressed(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        # The sender sent a copy to itself; a bounce naming it must not silence it.
        enqueue(sessions, [message("m1", to=["a@example.com", "b@example.org"])])
        facts = _bounce("a@example.com", "5.1.1", "550 5.1.1 User unknown", "m1")
        assert _record(sessions, facts, "k1").suppressed == ()
        assert _listed(sessions) == []


def test_a_report_naming_no_usable_recipient_is_about_the_messages_only_recipient(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(
            sessions,
            [message("one", to=["only@example.org"]), message("two", to=["x@a.org", "y@a.org"])],
        )
        event = InboundEvent(
            kind="bounce",
            description="a delivery report that names no readable recipient",
            details={"bounce_type": "soft", "reason": "undetermined"},
        )
        facts = InboundFacts("bounce", "s", Correlation(ids=("one",)), (event,))
        once = BouncePolicy(soft_limit=1, soft_window=86400)
        assert _record(sessions, facts, "k1", once).suppressed == ("only@example.org",)
        # With two recipients nobody can tell which one it was about: nothing.
        facts_two = InboundFacts("bounce", "s", Correlation(ids=("two",)), (event,))
        assert _record(sessions, facts_two, "k2", once).suppressed == ()


def test_a_refusal_during_delivery_gets_the_reason_and_decision_of_the_same_bounce(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        tenant_with_account(sessions, "other")
        enqueue(sessions, [message("m1", to=["gone@example.org", "full@example.org"])])
        pk = _pk(sessions, "m1")
        text = "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"
        dsn_event = _bounce("gone@example.org", "5.1.1", text, "m1").events[0]
        with session_scope(sessions) as session:
            # Another tenant cannot use the function to suppress this tenant's recipient.
            stranger = record_synchronous_refusal(
                session, "other", pk, "gone@example.org", 550, "5.1.1", text
            )
            assert stranger.suppressed is False
            # An address the message did not carry: the reason, no suppression.
            absent = record_synchronous_refusal(
                session, "acme", pk, "absent@example.org", 550, "5.1.1", text
            )
            assert absent.reason == "user_unknown" and absent.suppressed is False
            full = record_synchronous_refusal(
                session, "acme", pk, "full@example.org", 552, "5.2.2", "552 5.2.2 Mailbox full"
            )
            assert (full.reason, full.bounce_type, full.suppressed) == (
                "mailbox_full",
                "soft",
                False,
            )
            refused = record_synchronous_refusal(
                session, "acme", pk, "Gone@Example.org", 550, "5.1.1", text
            )
        assert (refused.reason, refused.bounce_type) == (
            dsn_event.details["reason"],
            dsn_event.details["bounce_type"],
        )
        assert refused.suppressed is True and refused.details["recipient"] == "gone@example.org"
        assert _listed(sessions) == ["gone@example.org"]
        assert _listed(sessions, "other") == []


def test_user_unknown_answered_to_data_is_a_filter_and_suppresses_nothing(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1", to=["b@example.org"])])
        with session_scope(sessions) as session:
            outcome = record_synchronous_refusal(
                session, "acme", _pk(sessions, "m1"), "b@example.org", 550, "5.0.0",
                "550 5.0.0 User unknown", command="DATA",
            )  # fmt: skip
        assert (outcome.reason, outcome.suppressed) == ("filtered", False)
        assert _listed(sessions) == []


def test_a_message_shows_its_latest_bounce_and_pec_receipts(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1", to=["b@example.org"]), message("m2")])
        first = _bounce("b@example.org", "4.2.2", "452 4.2.2 Mailbox over quota", "m1")
        last = _bounce("b@example.org", "5.1.1", "550 5.1.1 User unknown", "m1")
        _record(sessions, first, "k1")
        _record(sessions, last, "k2")
        pk = _pk(sessions, "m1")
        with session_scope(sessions) as session:
            at = now()
            session.add_all(
                [
                    MessageEvent(message_pk=pk, ts=at, kind="pec_acceptance", description="a"),
                    MessageEvent(message_pk=pk, ts=at + 5, kind="pec_delivery", description="d"),
                ]
            )
        with session_scope(sessions) as session:
            summary = latest_returned_mail(session, [pk, _pk(sessions, "m2")])
            messages = list(session.scalars(select(Message).order_by(Message.pk)))
            with_history = message_records(session, messages, True)
            without_history = message_records(session, messages, False)
        mine = summary[pk]
        assert (mine["bounce_type"], mine["bounce_category"], mine["bounce_code"]) == (
            "hard",
            "user_unknown",
            "5.1.1",
        )
        assert mine["bounce_reason"].startswith("550 5.1.1 User unknown")
        assert mine["pec_delivery_ts"] == mine["pec_acceptance_ts"] + 5
        assert mine["pec_error"] is None
        assert summary[_pk(sessions, "m2")]["bounce_ts"] is None
        for records in (with_history, without_history):
            assert records[0]["bounce_category"] == "user_unknown"
            assert records[0]["pec_delivery_ts"] == mine["pec_delivery_ts"]
            assert records[1]["bounce_category"] is None
