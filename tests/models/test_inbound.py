"""Recording returned mail and PEC timeouts, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from mailproxy_models.db import now, session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.inbound import (
    Correlation,
    InboundEvent,
    InboundFacts,
    InboundMail,
    record_inbound_mail,
)
from mailproxy_models.messages import SENT, Message, enqueue_messages
from mailproxy_models.pec_timeouts import check_pec_timeouts
from mailproxy_models.suppression_list import list_suppressed
from mailproxy_models.verp import VerpTag
from tests.models.factories import LIMITS, database, enqueue, message, tenant_with_account


def _hard_bounce(recipient: str, **correlation) -> InboundFacts:
    event = InboundEvent(
        kind="bounce",
        description="550 5.1.1 user unknown",
        recipients=(recipient,),
        smtp_code=550,
        enhanced_status="5.1.1",
        details={"bounce_type": "hard"},
        hard_bounce=True,
    )
    return InboundFacts("bounce", "a bounce", Correlation(**correlation), (event,))


def _record(sessions, facts, key="k1", tenant="acme"):
    with session_scope(sessions) as session:
        return record_inbound_mail(session, tenant, "main", key, facts, now())


def _events(sessions, msg_id, tenant="acme"):
    with session_scope(sessions) as session:
        pk = session.scalar(
            select(Message.pk).where(Message.id == msg_id, Message.tenant_id == tenant)
        )
        return [
            e.kind
            for e in session.scalars(select(MessageEvent).where(MessageEvent.message_pk == pk))
        ]


def test_a_bounce_is_recorded_once_and_suppresses_only_its_own_recipient(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1", to=["Gone <Gone@Example.org>"])])
        first = _record(sessions, _hard_bounce("gone@example.org", ids=("m1",)))
        assert first.outcome == "recorded" and first.suppressed == ("gone@example.org",)
        assert _record(sessions, _hard_bounce("gone@example.org", ids=("m1",))).outcome == (
            "duplicate"
        )
        assert _events(sessions, "m1") == ["bounce"]
        # A bounce naming an address the message never had is reported, suppresses nothing.
        forged = _record(sessions, _hard_bounce("victim@example.org", ids=("m1",)), key="k2")
        assert forged.outcome == "recorded" and forged.suppressed == ()
        with session_scope(sessions) as session:
            listed, total = list_suppressed(session, "acme")
            assert [entry.address for entry in listed] == ["gone@example.org"] and total == 1


def test_correlation_never_crosses_tenants(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions, "acme")
        tenant_with_account(sessions, "other")
        enqueue(sessions, [message("m1")], tenant="acme")
        with session_scope(sessions) as session:
            acme = session.scalars(select(Message).where(Message.id == "m1")).one()
            tag = VerpTag(acme.pk, acme.verp_token)
        # Other's mailbox receives a bounce that names acme's message every way it can.
        facts = _hard_bounce("b@example.org", ids=("m1",), verp_tags=(tag,))
        result = _record(sessions, facts, tenant="other")
        assert result.outcome == "uncorrelated"
        assert _events(sessions, "m1", "acme") == []


def test_verp_then_message_id_correlate_when_our_header_is_gone(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1"), message("m2")])
        with session_scope(sessions) as session:
            rows = session.execute(select(Message.id, Message.pk, Message.verp_token)).all()
            pks = {row.id: row.pk for row in rows}
            tags = {row.id: VerpTag(row.pk, row.verp_token) for row in rows}
            session.execute(
                update(Message).where(Message.id == "m2").values(smtp_message_id="<m2@example.com>")
            )
        by_verp = _hard_bounce("b@example.org", verp_tags=(tags["m1"],))
        assert _record(sessions, by_verp).outcome == "recorded"
        by_id = _hard_bounce("b@example.org", message_ids=("m2@example.com",))
        assert _record(sessions, by_id, key="k2").message_pk == pks["m2"]


def test_a_verp_address_without_the_messages_token_names_no_message(database_url):
    """Message pks can be guessed, tokens cannot: a made-up bounce to ``bounces+m<pk>``
    suppresses nobody. A message stored before tokens existed still answers to it."""
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1"), message("old")])
        with session_scope(sessions) as session:
            rows = session.execute(select(Message.id, Message.pk, Message.verp_token)).all()
            pks = {row.id: row.pk for row in rows}
            token = next(row.verp_token for row in rows if row.id == "m1")
            assert re.fullmatch(r"[a-z2-7]{8}", token)
            session.execute(update(Message).where(Message.id == "old").values(verp_token=None))
        guesses = [VerpTag(pks["m1"], None), VerpTag(pks["m1"], "aaaaaaaa")]
        for number, guess in enumerate(guesses):
            forged = _hard_bounce("b@example.org", verp_tags=(guess,))
            assert _record(sessions, forged, key=f"f{number}").outcome == "uncorrelated"
        assert _events(sessions, "m1") == []
        with session_scope(sessions) as session:
            assert list_suppressed(session, "acme")[0] == []
        legacy = _hard_bounce("b@example.org", verp_tags=(VerpTag(pks["old"], None),))
        assert _record(sessions, legacy, key="legacy").message_pk == pks["old"]
        genuine = _hard_bounce("b@example.org", verp_tags=(VerpTag(pks["m1"], token),))
        assert _record(sessions, genuine, key="genuine").message_pk == pks["m1"]


def test_mail_that_is_not_a_bounce_is_logged_without_events(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        result = _record(sessions, InboundFacts("auto_reply", "Out of office"))
        assert result.outcome == "ignored"
        with session_scope(sessions) as session:
            (row,) = session.scalars(select(InboundMail))
            assert (row.kind, row.outcome) == ("auto_reply", "ignored")


def _pec_sent(sessions, sent_ago: float, recipients: list[str]) -> int:
    with session_scope(sessions) as session:
        from mailproxy_models.accounts import Account

        session.execute(update(Account).values(is_pec=True))
        enqueue_messages(session, "acme", [message("p1", to=recipients)], LIMITS)
        session.execute(
            update(Message).values(status=SENT, sent_ts=now() - sent_ago, smtp_message_id="<p1@x>")
        )
        return session.scalar(select(Message.pk))


def _check(sessions, current=None):
    with session_scope(sessions) as session:
        return check_pec_timeouts(session, 1800, 86400, current or now())


def _pec_events(sessions):
    with session_scope(sessions) as session:
        rows = session.scalars(select(MessageEvent).order_by(MessageEvent.pk))
        return [(e.kind, (e.details or {}).get("expected")) for e in rows]


def test_pec_timeouts_fire_once_each_for_acceptance_and_delivery(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _pec_sent(sessions, 3600, ["a@pec.example.org", "b@pec.example.org"])
        assert _check(sessions) == 1
        assert _check(sessions) == 0
        assert _pec_events(sessions) == [("pec_timeout", "acceptance")]
        # A day later one recipient's delivery receipt came, the other's did not.
        receipt = InboundEvent(
            kind="pec_delivery",
            description="delivered",
            recipients=("a@pec.example.org",),
            details={"recipients": ["a@pec.example.org"]},
        )
        facts = InboundFacts("pec_receipt", "r", Correlation(message_ids=("<p1@x>",)), (receipt,))
        assert _record(sessions, facts).outcome == "recorded"
        later = now() + 86400
        assert _check(sessions, later) == 1
        assert _check(sessions, later + 60) == 0
        with session_scope(sessions) as session:
            last = session.scalars(select(MessageEvent).order_by(MessageEvent.pk.desc())).first()
            assert last.kind == "pec_timeout"
            assert last.details == {"expected": "delivery", "recipients": ["b@pec.example.org"]}


def test_no_pec_timeout_when_receipts_came_in_time(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _pec_sent(sessions, 60, ["a@pec.example.org"])
        assert _check(sessions) == 0  # too early for anything
        events = [
            InboundEvent(
                kind=kind,
                description=kind,
                recipients=("a@pec.example.org",),
                details={"recipients": ["a@pec.example.org"]},
            )
            for kind in ("pec_acceptance", "pec_delivery")
        ]
        facts = InboundFacts("pec_receipt", "r", Correlation(message_ids=("p1@x",)), tuple(events))
        _record(sessions, facts)
        assert _check(sessions, now() + 2 * 86400 - 3600) == 0
        assert [kind for kind, _ in _pec_events(sessions)] == ["pec_acceptance", "pec_delivery"]


def test_a_late_delivery_warning_does_not_stop_the_delivery_timeout(database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        _pec_sent(sessions, 60, ["a@pec.example.org"])
        receipts = [
            InboundEvent(
                kind=kind,
                description=receipt_type,
                recipients=("a@pec.example.org",),
                details={"receipt_type": receipt_type, "recipients": ["a@pec.example.org"]},
            )
            for kind, receipt_type in (
                ("pec_acceptance", "accettazione"),
                ("pec_error", "preavviso-errore-consegna"),
            )
        ]
        facts = InboundFacts(
            "pec_receipt", "r", Correlation(message_ids=("p1@x",)), tuple(receipts)
        )
        _record(sessions, facts)
        assert _check(sessions, now() + 86400) == 1
        assert _pec_events(sessions)[-1] == ("pec_timeout", "delivery")


def test_retention_keeps_a_message_whose_bounce_the_client_has_not_taken(database_url):
    from mailproxy_models.inbound import purge_inbound_log
    from mailproxy_models.reports import purge_reported

    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message("m1")])
        long_ago = now() - 30 * 86400
        with session_scope(sessions) as session:
            session.execute(
                update(Message).values(status=SENT, sent_ts=long_ago, reported_ts=long_ago)
            )
        _record(sessions, _hard_bounce("b@example.org", ids=("m1",)))
        with session_scope(sessions) as session:
            assert purge_reported(session, now()) == 0  # the bounce is still unreported
            session.execute(update(MessageEvent).values(reported_ts=now()))
        with session_scope(sessions) as session:
            assert purge_reported(session, now()) == 1
            assert purge_inbound_log(session, now() - 86400) == 0
            assert purge_inbound_log(session, now() + 1) == 1


def _soft_bounce(recipient: str, msg_id: str) -> InboundFacts:
    event = InboundEvent(
        kind="bounce",
        description="452 4.2.2 mailbox full",
        recipients=(recipient,),
        smtp_code=452,
        enhanced_status="4.2.2",
        details={"bounce_type": "soft"},
    )
    return InboundFacts("bounce", "a soft bounce", Correlation(ids=(msg_id,)), (event,))


def test_soft_bounces_past_the_limit_suppress_the_address(database_url):
    from mailproxy_models.inbound import BouncePolicy

    policy = BouncePolicy(soft_limit=3, soft_window=86400)
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message(f"m{i}", to=["full@example.org"]) for i in range(4)])

        def bounce(i: int, at: float):
            with session_scope(sessions) as session:
                facts = _soft_bounce("full@example.org", f"m{i}")
                return record_inbound_mail(session, "acme", "main", f"k{i}", facts, at, policy)

        start = now()
        assert bounce(0, start).suppressed == ()
        # Two days later the window starts again: this is the first of a new count.
        assert bounce(1, start + 2 * 86400).suppressed == ()
        assert bounce(2, start + 2 * 86400 + 60).suppressed == ()
        assert bounce(3, start + 2 * 86400 + 120).suppressed == ("full@example.org",)
        with session_scope(sessions) as session:
            (entry,), _ = list_suppressed(session, "acme")
            assert entry.reason.startswith("3 soft bounces within 1 days, last 4.2.2")
