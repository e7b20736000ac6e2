"""PEC timeouts: a certified message without its receipts in time gets a ``pec_timeout`` event.

The provider owes an acceptance receipt within minutes and a delivery receipt per
recipient within a day (DPR 68/2005); when one does not come, the client must hear of it.
Each message times out at most once for acceptance and once for delivery.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, insert, select
from sqlalchemy.orm import Session

from .accounts import Account
from .events import MessageEvent, events_of
from .inbound import message_recipients
from .messages import SENT, Message
from .suppression_list import normalize_address

RECEIPT_KINDS = ("pec_acceptance", "pec_delivery", "pec_error")
# Messages that passed their delivery deadline longer ago than this are not looked at any
# more (the checker runs every minute; this covers a beat that was down for a while).
DELIVERY_HORIZON = 6 * 3600
PAGE = 500
# The provider's warning that a delivery is late (after 12 h): the final receipt is still
# owed, so it does not answer for the recipient.
WARNING_RECEIPT = "preavviso-errore-consegna"


def check_pec_timeouts(
    session: Session, acceptance_timeout: float, delivery_timeout: float, current: float
) -> int:
    """Record the timeouts that are due; returns how many events it wrote."""
    rows = _acceptance_timeouts(session, acceptance_timeout, current)
    rows += _delivery_timeouts(session, delivery_timeout, current)
    if rows:
        session.execute(insert(MessageEvent), rows)
    return len(rows)


def _pec_sent() -> Any:
    return (
        select(Message)
        .join(
            Account, and_(Account.tenant_id == Message.tenant_id, Account.id == Message.account_id)
        )
        .where(Account.is_pec.is_(True), Message.status == SENT)
    )


def _has_event(*conditions: Any) -> Any:
    return exists().where(MessageEvent.message_pk == Message.pk, *conditions)


def _acceptance_timeouts(session: Session, timeout: float, current: float) -> list[dict[str, Any]]:
    query = _pec_sent().where(
        Message.sent_ts <= current - timeout,
        ~_has_event(MessageEvent.kind.in_((*RECEIPT_KINDS, "pec_timeout"))),
    )
    minutes = round(timeout / 60)
    return [
        _timeout_event(
            message.pk,
            current,
            f"no PEC acceptance receipt within {minutes} min of sending",
            {"expected": "acceptance", "waited_s": int(current - (message.sent_ts or current))},
        )
        for message in session.scalars(query.order_by(Message.pk))
    ]


def _delivery_timeouts(session: Session, timeout: float, current: float) -> list[dict[str, Any]]:
    timed_out = MessageEvent.details["expected"].as_string() == "delivery"
    query = _pec_sent().where(
        Message.sent_ts <= current - timeout,
        Message.sent_ts > current - timeout - DELIVERY_HORIZON,
        ~_has_event(MessageEvent.kind == "pec_timeout", timed_out),
    )
    rows: list[dict[str, Any]] = []
    after = 0
    while True:  # by pages: messages fully delivered stay candidates until the horizon
        page = list(
            session.scalars(query.where(Message.pk > after).order_by(Message.pk).limit(PAGE))
        )
        if not page:
            return rows
        after = page[-1].pk
        history = events_of(session, [m.pk for m in page])
        for message in page:
            missing = _without_receipt(message, history[message.pk])
            if missing:
                hours = round(timeout / 3600, 1)
                rows.append(
                    _timeout_event(
                        message.pk,
                        current,
                        f"no PEC delivery receipt within {hours:g} h for {', '.join(missing)}",
                        {"expected": "delivery", "recipients": missing},
                    )
                )


def _without_receipt(message: Message, events: list[MessageEvent]) -> list[str]:
    """Recipients for which no delivery or error receipt arrived (a warning is not one)."""
    answered: set[str] = set()
    for event in events:
        details = event.details or {}
        if event.kind in ("pec_delivery", "pec_error") and (
            details.get("receipt_type") != WARNING_RECEIPT
        ):
            answered.update(normalize_address(r) for r in details.get("recipients", []))
    return sorted(message_recipients(message) - answered)


def _timeout_event(
    message_pk: int, current: float, description: str, details: dict[str, Any]
) -> dict[str, Any]:
    return {
        "message_pk": message_pk,
        "ts": current,
        "kind": "pec_timeout",
        "description": description,
        "details": details,
    }
