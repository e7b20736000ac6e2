"""What a mail read from a bounce/receipt mailbox is, as facts the models can record.

PEC receipts are recognised first (they are never bounces), then bounces; auto-replies
and anything else are recorded as seen and left alone. Nothing here raises: a mail the
parsers choke on is "unparseable", logged and set aside, and polling goes on.
"""

from __future__ import annotations

import email
import logging
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses

from mailproxy_models.bounce_reasons import BounceReason
from mailproxy_models.inbound import Correlation, InboundEvent, InboundFacts
from mailproxy_models.verp import VerpTag, verp_tag

from .dsn import BounceReport, is_auto_reply, parse_bounce
from .pec import PecReceipt, parse_pec_receipt

log = logging.getLogger(__name__)

# Headers in which a delivered bounce carries the address it was sent to (our VERP address).
DESTINATION_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")

RECEIPT_WORDS = {
    "accettazione": "accepted by the sender's PEC provider",
    "presa-in-carico": "taken in charge by the recipient's PEC provider",
    "avvenuta-consegna": "delivered to the recipient's PEC mailbox",
    "non-accettazione": "not accepted by the sender's PEC provider",
    "errore-consegna": "not delivered to the recipient's PEC mailbox",
    "preavviso-errore-consegna": "not yet delivered after 12 hours (warning)",
    "rilevazione-virus": "refused: the provider found a virus",
}


def classify(raw: bytes) -> InboundFacts:
    """The facts of one raw mail; never raises."""
    try:
        headers = email.message_from_bytes(raw, policy=compat32)
        summary = _summary(headers)
        verp = _verp_tags(headers)
        receipt = parse_pec_receipt(raw)
        if receipt is not None:
            return _receipt_facts(receipt, verp, summary)
        report = parse_bounce(raw)
        if report is not None:
            return _bounce_facts(report, verp, summary)
        if is_auto_reply(raw):
            return InboundFacts("auto_reply", summary)
        return InboundFacts("not_recognised", summary)
    except Exception as exc:  # noqa: BLE001 - bad mail is set aside, never stops polling
        log.warning("could not parse a returned mail (%s); set aside", exc, exc_info=True)
        return InboundFacts("unparseable", f"parser error: {type(exc).__name__}: {exc}"[:500])


def _summary(headers: Message) -> str:
    parts = [f"{name}: {_header(headers, name)}" for name in ("From", "Subject", "Message-ID")]
    return "; ".join(parts)[:1000]


def _header(headers: Message, name: str) -> str:
    try:
        return str(headers.get(name, "")).replace("\r", " ").replace("\n", " ")
    except Exception:  # noqa: BLE001 - a header that cannot be decoded is shown empty
        return ""


def _verp_tags(headers: Message) -> tuple[VerpTag, ...]:
    values = [str(v) for name in DESTINATION_HEADERS for v in (headers.get_all(name) or [])]
    tags = (verp_tag(address) for _, address in getaddresses(values))
    return tuple(dict.fromkeys(tag for tag in tags if tag is not None))


def _bounce_facts(report: BounceReport, verp: tuple[VerpTag, ...], summary: str) -> InboundFacts:
    events = tuple(
        InboundEvent(
            kind="bounce",
            description=rcpt.diagnostic or f"{rcpt.action} ({rcpt.status or 'no status'})",
            recipients=(rcpt.recipient,),
            smtp_code=rcpt.smtp_code,
            enhanced_status=rcpt.status,
            details={
                "bounce_type": rcpt.bounce_type,
                "reason": rcpt.reason,
                "recipient": rcpt.recipient,
                "action": rcpt.action,
                "remote_mta": rcpt.remote_mta,
                "reporting_mta": report.reporting_mta,
                "format": report.format,
            },
            hard_bounce=rcpt.bounce_type == "hard",
        )
        for rcpt in report.recipients
        if rcpt.bounce_type is not None  # "delivered" / "relayed" notices are not bounces
    )
    if not report.recipients:
        # A delivery report that names no usable recipient: it is about the message's
        # recipient, which the models take from the message when it had only one.
        events = (_unnamed_recipient_event(report),)
    correlation = Correlation(
        ids=report.correlation_ids,
        message_ids=(report.original_message_id,) if report.original_message_id else (),
        verp_tags=verp,
    )
    return InboundFacts("bounce", summary, correlation, events)


def _unnamed_recipient_event(report: BounceReport) -> InboundEvent:
    return InboundEvent(
        kind="bounce",
        description="a delivery report that names no readable recipient",
        details={
            "bounce_type": "soft",
            "reason": BounceReason.UNDETERMINED.value,
            "recipient": None,
            "action": "failed",
            "remote_mta": None,
            "reporting_mta": report.reporting_mta,
            "format": report.format,
        },
    )


def _receipt_facts(receipt: PecReceipt, verp: tuple[VerpTag, ...], summary: str) -> InboundFacts:
    words = RECEIPT_WORDS.get(receipt.receipt_type, receipt.receipt_type)
    problem = receipt.error_detail or receipt.error
    description = f"PEC {receipt.receipt_type}: {words}"
    if receipt.recipients:
        description += f" ({', '.join(receipt.recipients)})"
    if problem and receipt.event_kind == "pec_error":
        description += f": {problem}"
    event = InboundEvent(
        kind=receipt.event_kind,
        description=description,
        recipients=receipt.recipients,
        details={
            "receipt_type": receipt.receipt_type,
            "recipients": list(receipt.recipients),
            "provider": receipt.provider,
            "identifier": receipt.identifier,
            "error": receipt.error,
            "error_detail": receipt.error_detail,
        },
        ts=receipt.ts,
    )
    correlation = Correlation(
        ids=receipt.correlation_ids,
        message_ids=(receipt.original_message_id,) if receipt.original_message_id else (),
        verp_tags=verp,
    )
    return InboundFacts("pec_receipt", summary, correlation, (event,))
