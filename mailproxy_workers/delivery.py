"""One SMTP transaction per message, classified into sent / temporary / permanent.

A message is ``sent`` only when the server answered 250 to the end of DATA; the code and
text of that answer go on the event. 4xx answers, timeouts and dropped connections are
temporary; 5xx answers are permanent. Each recipient's answer is kept on the outcome
(``recipients``): an attempt goes only to the recipients not yet final, and one refused for
now among several is tried again alone, in a new transaction, on the retry schedule.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from mailproxy_models.accounts import SmtpEndpoint
from mailproxy_models.claims import ClaimedMessage
from mailproxy_models.lifecycle import AttemptOutcome
from mailproxy_models.log_format import log_context
from mailproxy_models.recipients import (
    ACCEPTED,
    DEFERRED,
    recipient_outcome,
    recipients_to_try,
    status_of_code,
    summary,
)
from mailproxy_models.verp import verp_address

from .attachments import AttachmentError, AttachmentFetcher, FetchedAttachment, TenantSources
from .composer import DownloadLink, Envelope, compose
from .offload import Offloader
from .smtp_pool import InsecureAuthRefused, PooledConnection, SmtpConnectionPool

log = logging.getLogger(__name__)
LEADING_DOT = re.compile(rb"(?m)^\.")
ENHANCED_STATUS = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


class _Refused(Exception):
    """An SMTP answer that ends the transaction for this message (not the connection)."""

    def __init__(
        self,
        stage: str,
        code: int,
        text: str,
        details: dict[str, Any] | None = None,
        recipients: dict[str, dict[str, Any]] | None = None,
    ):
        super().__init__(f"{stage}: {code} {text}")
        self.stage, self.code, self.text, self.details = stage, code, text, details or {}
        self.recipients = recipients


def _decode(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _enhanced(text: str) -> str | None:
    match = ENHANCED_STATUS.match(text)
    return match.group(1) if match else None


@dataclass(frozen=True)
class AttachmentContext:
    """How the attachments of one tenant's messages are fetched and, when large, offloaded."""

    fetcher: AttachmentFetcher
    sources: TenantSources
    offload: Offloader | None = None


def deliver_messages(
    pool: SmtpConnectionPool,
    endpoint: SmtpEndpoint,
    messages: Iterable[ClaimedMessage],
    attachments: AttachmentContext | None = None,
) -> Iterator[tuple[ClaimedMessage, AttemptOutcome]]:
    """Send messages of one account over its pooled connection, yielding each outcome.

    Once the account itself fails (authentication), the rest of its batch is not tried:
    each message gets the same account-level outcome, which spends none of its retries."""
    account_failure: AttemptOutcome | None = None
    for message in messages:
        if account_failure is not None:
            yield message, account_failure
            continue
        # Lines logged while sending (attachments, offload, pool) name the message.
        with log_context(message_id=message.id, tenant_id=message.tenant_id):
            outcome = _isolated(pool, endpoint, message, attachments)
        if outcome.kind == "account":
            account_failure = outcome
        yield message, outcome


def _isolated(
    pool: SmtpConnectionPool,
    endpoint: SmtpEndpoint,
    message: ClaimedMessage,
    attachments: AttachmentContext | None,
) -> AttemptOutcome:
    """One attempt whose unexpected failure (a bug, a tenant setting no one foresaw) is this
    message's outcome, tried again on the schedule, never the end of the batch. Nothing was
    accepted then: every path past the server's answer to DATA returns an outcome."""
    try:
        return deliver_one(pool, endpoint, message, attachments)
    except Exception as exc:
        log.exception("message %s/%s could not be prepared or sent", message.tenant_id, message.id)
        return AttemptOutcome(
            "temporary",
            f"could not be prepared or sent ({type(exc).__name__}: {exc}); "
            "tried again on the retry schedule",
            details={"exception": type(exc).__name__},
        )


def deliver_one(
    pool: SmtpConnectionPool,
    endpoint: SmtpEndpoint,
    message: ClaimedMessage,
    attachments: AttachmentContext | None = None,
) -> AttemptOutcome:
    """One attempt. With an attachment context the attachments are fetched now (a failed
    fetch is the attempt's outcome, temporary or permanent); without one, the base64
    attachments stored in the payload are sent as they are."""
    fetched: list[FetchedAttachment] = []  # every one fetched: all closed at the end
    sent: list[FetchedAttachment] | None = None  # those still attached after offload
    links: list[DownloadLink] = []
    notes: list[str] = []
    try:
        if attachments is not None:
            fetched = attachments.fetcher.fetch_all(
                message.payload.get("attachments") or [], attachments.sources
            )
            sent = fetched
            if attachments.offload is not None and fetched:
                sent, links, notes = attachments.offload.apply(message, fetched)
        outcome = _send(pool, endpoint, message, sent, links)
    except AttachmentError as exc:
        return AttemptOutcome(
            "permanent" if exc.permanent else "temporary",
            str(exc),
            details={"attachment": exc.filename, "reason": exc.reason},
        )
    finally:
        for item in fetched:
            item.close()
    if notes:
        outcome = replace(
            outcome,
            description=f"{outcome.description}; {'; '.join(notes)}",
            details={**outcome.details, "attachment_warnings": notes},
        )
    return outcome


def _send(
    pool: SmtpConnectionPool,
    endpoint: SmtpEndpoint,
    message: ClaimedMessage,
    fetched: list[FetchedAttachment] | None,
    links: list[DownloadLink],
) -> AttemptOutcome:
    payload = message.payload
    if message.smtp_message_id:  # every attempt carries the Message-ID chosen at enqueue
        payload = {**payload, "message_id": message.smtp_message_id}
    try:
        envelope = compose(payload, fetched, links)
    except (ValueError, TypeError, KeyError) as exc:
        return AttemptOutcome("permanent", f"message cannot be built: {exc}")
    # Recipients already accepted or refused for good by an earlier attempt are not sent to.
    envelope = replace(
        envelope, recipients=recipients_to_try(message.payload, message.recipient_outcomes)
    )
    if endpoint.bounce_address and not message.payload.get("return_path"):
        # VERP: the envelope sender names the message; a client's own return_path wins.
        mail_from = verp_address(endpoint.bounce_address, message.pk, message.verp_token)
        envelope = replace(envelope, mail_from=mail_from)
    # A pooled connection the server closed while idle fails at MAIL FROM, before anything
    # was sent: such a failure is retried once on a fresh connection.
    for attempt in (1, 2):
        try:
            with pool.connection(endpoint) as pooled:
                try:
                    return _transaction(pooled, envelope)
                except _Refused as refusal:
                    # 421 means the server is closing the session: never reuse it.
                    pooled.broken = refusal.code == 421
                    return _classify(refusal)
        except smtplib.SMTPServerDisconnected as exc:
            if attempt == 1 and getattr(exc, "stage", None) == "mail":
                continue
            return AttemptOutcome("temporary", f"connection lost: {exc}")
        except InsecureAuthRefused as exc:  # the account's problem: no retry is spent
            return AttemptOutcome("account", str(exc))
        except smtplib.SMTPAuthenticationError as exc:
            text = _decode(exc.smtp_error)
            return AttemptOutcome(
                "account",
                f"authentication failed for account '{endpoint.account_id}': "
                f"{exc.smtp_code} {text}",
                smtp_code=exc.smtp_code,
                enhanced_status=_enhanced(text),
                smtp_text=text,
            )
        except smtplib.SMTPResponseException as exc:
            return _classify(_Refused("connect", exc.smtp_code, _decode(exc.smtp_error)))
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            return AttemptOutcome(
                "temporary", f"cannot talk to {endpoint.host}:{endpoint.port}: {exc}"
            )
    raise AssertionError("unreachable")


def _transaction(pooled: PooledConnection, envelope: Envelope) -> AttemptOutcome:
    smtp = pooled.smtp
    options = ["SMTPUTF8"] if envelope.smtputf8 else []
    try:
        code, reply = smtp.mail(envelope.mail_from, options)
    except smtplib.SMTPServerDisconnected as exc:
        if pooled.uses > 0:
            exc.stage = "mail"  # type: ignore[attr-defined]
        raise
    if code != 250:
        _abort(smtp, code)
        raise _Refused("MAIL FROM", code, _decode(reply))
    answers: dict[str, dict[str, Any]] = {}
    refused: dict[str, dict[str, Any]] = {}
    for rcpt in envelope.recipients:
        code, reply = smtp.rcpt(rcpt)
        text = _decode(reply)
        answers[rcpt] = recipient_outcome(status_of_code(code), code, _enhanced(text), text)
        if code not in (250, 251):
            refused[rcpt] = {"code": code, "text": text}
            if code == 421:
                raise _Refused("RCPT TO", code, text, {"refused_recipients": refused})
    if len(refused) == len(envelope.recipients):
        _abort(smtp, 0)
        # All refused: temporary if any refusal was, so the message is tried again.
        worst = min(refused.values(), key=lambda r: 0 if 400 <= r["code"] < 500 else 1)
        raise _Refused(
            "RCPT TO", worst["code"], worst["text"], {"refused_recipients": refused}, answers
        )
    if envelope.segments is None:
        code, reply = smtp.data(envelope.data)
    else:
        code, reply = _stream_data(smtp, envelope)
    text = _decode(reply)
    for answer in answers.values():  # the answer to DATA is every accepted recipient's
        if answer["status"] == ACCEPTED:
            answer.update(recipient_outcome(status_of_code(code), code, _enhanced(text), text))
    if code != 250:
        _abort(smtp, code)
        raise _Refused(
            "DATA", code, text, {"refused_recipients": refused} if refused else None, answers
        )
    details: dict[str, Any] = {"accepted_recipients": len(envelope.recipients) - len(refused)}
    if refused:
        details["refused_recipients"] = refused
    waiting = any(answer["status"] == DEFERRED for answer in answers.values())
    return AttemptOutcome(
        # Some recipients refused for now: the message waits for their next try.
        "temporary" if waiting else "sent",
        "accepted by the server" if not refused else summary(answers),
        smtp_code=code,
        enhanced_status=_enhanced(text),
        smtp_text=text,
        details=details,
        smtp_message_id=envelope.message_id,
        recipients=answers,
    )


def _stream_data(smtp: smtplib.SMTP, envelope: Envelope) -> tuple[int, bytes]:
    """DATA written piece by piece (smtplib's ``data`` wants the whole message in memory
    and copies it twice more). Every piece ends at a line end, so dot-stuffing per piece
    is exact."""
    code, reply = smtp.docmd("data")
    if code != 354:
        return code, reply
    for piece in envelope.iter_data():
        smtp.send(LEADING_DOT.sub(b"..", piece))
    smtp.send(b".\r\n")
    return smtp.getreply()


def _abort(smtp: smtplib.SMTP, code: int) -> None:
    """End a refused transaction so the connection can carry the next message."""
    if code != 421:
        smtp.rset()


def _classify(refusal: _Refused) -> AttemptOutcome:
    kind = "temporary" if 400 <= refusal.code < 500 or refusal.code == 0 else "permanent"
    return AttemptOutcome(
        kind,  # type: ignore[arg-type]
        f"{refusal.stage} refused: {refusal.code} {refusal.text}",
        smtp_code=refusal.code,
        enhanced_status=_enhanced(refusal.text),
        smtp_text=refusal.text,
        details=refusal.details,
        recipients=refusal.recipients,
    )
