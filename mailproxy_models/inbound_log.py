"""The log of mail read from bounce and receipt mailboxes, for people: what each mail was
taken for and what became of it. Mail set aside (not recognised, unparseable, about no
known message) is left unseen in the mailbox; this log says why without IMAP access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from .db import unix_seconds
from .inbound import InboundMail
from .messages import Message, decode_cursor, encode_cursor


@dataclass(frozen=True)
class InboundLogFilter:
    account_id: str | None = None
    kind: str | None = None
    outcome: str | None = None


def list_inbound_mail(
    session: Session,
    tenant_id: str,
    where: InboundLogFilter,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's log, newest first, and the cursor of the next page (None on
    the last). Each entry names the client's message id when it was correlated."""
    conditions = [InboundMail.tenant_id == tenant_id]
    for column, value in (
        (InboundMail.account_id, where.account_id),
        (InboundMail.kind, where.kind),
        (InboundMail.outcome, where.outcome),
    ):
        if value is not None:
            conditions.append(column == value)
    if cursor is not None:
        conditions.append(InboundMail.pk < decode_cursor(cursor))
    query = (
        select(InboundMail, Message.id)
        .outerjoin(
            Message,
            and_(Message.pk == InboundMail.message_pk, Message.tenant_id == InboundMail.tenant_id),
        )
        .where(*conditions)
        .order_by(InboundMail.pk.desc())
        .limit(limit + 1)
    )
    page = list(session.execute(query))
    next_cursor = encode_cursor(page[limit - 1][0].pk) if len(page) > limit else None
    return [_record(mail, message_id) for mail, message_id in page[:limit]], next_cursor


def _record(mail: InboundMail, message_id: str | None) -> dict[str, Any]:
    return {
        "account_id": mail.account_id,
        "received_at": unix_seconds(mail.received_at),
        "kind": mail.kind,
        "outcome": mail.outcome,
        "message_id": message_id,
        "summary": mail.summary,
        "mail_sha256": mail.mail_key,
    }
