"""Bounce/receipt mailboxes: where each account's IMAP polling stands and how it last went.

One row per account with ``imap_host`` set. Polling reads only new mail: messages with a
UID above ``last_uid`` while the folder's UIDVALIDITY is unchanged (RFC 3501 2.3.1.1: a new
UIDVALIDITY means the old UIDs mean nothing, so everything is read again, and the
inbound-mail log keeps that from recording anything twice). A lease lets one worker at a
time poll a mailbox; a failing mailbox waits longer after each failure, alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .accounts import Account
from .db import Base, insert_for, unix_seconds

# The longest wait between tries of a mailbox that keeps failing.
MAX_BACKOFF = 3600.0


class MailboxState(Base):
    __tablename__ = "mailbox_state"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["accounts.tenant_id", "accounts.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    next_poll_at: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    lease_until: Mapped[float | None] = mapped_column(Float)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_poll_at: Mapped[float | None] = mapped_column(Float)
    last_success_at: Mapped[float | None] = mapped_column(Float)
    processed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


@dataclass(frozen=True)
class MailboxPosition:
    """Where the last successful poll stopped."""

    uidvalidity: int | None
    last_uid: int


def mailboxes_due(session: Session, current: float, limit: int = 500) -> list[tuple[str, str]]:
    """Accounts with a mailbox whose next poll is due and that no worker holds."""
    _create_missing_states(session)
    query = (
        select(MailboxState.tenant_id, MailboxState.account_id)
        .join(
            Account,
            (Account.tenant_id == MailboxState.tenant_id) & (Account.id == MailboxState.account_id),
        )
        .where(
            Account.imap_host.is_not(None),
            MailboxState.next_poll_at <= current,
            or_(MailboxState.lease_until.is_(None), MailboxState.lease_until < current),
        )
        .order_by(MailboxState.next_poll_at)
        .limit(limit)
    )
    return [(row.tenant_id, row.account_id) for row in session.execute(query)]


def _create_missing_states(session: Session) -> None:
    missing = (
        select(Account.tenant_id, Account.id)
        .outerjoin(
            MailboxState,
            (Account.tenant_id == MailboxState.tenant_id) & (Account.id == MailboxState.account_id),
        )
        .where(Account.imap_host.is_not(None), MailboxState.tenant_id.is_(None))
    )
    rows = [{"tenant_id": t, "account_id": a} for t, a in session.execute(missing)]
    if rows:
        session.execute(insert_for(session, MailboxState).on_conflict_do_nothing(), rows)


def claim_mailbox(
    session: Session,
    tenant_id: str,
    account_id: str,
    lease_seconds: float,
    current: float,
    force: bool = False,
) -> MailboxPosition | None:
    """Take the mailbox for one poll; None when another worker holds it or it is not due
    (``force``: due or not, as run-now asks)."""
    _create_missing_states(session)
    due = MailboxState.next_poll_at <= (float("inf") if force else current)
    result = session.execute(
        update(MailboxState)
        .where(
            MailboxState.tenant_id == tenant_id,
            MailboxState.account_id == account_id,
            due,
            or_(MailboxState.lease_until.is_(None), MailboxState.lease_until < current),
        )
        .values(lease_until=current + lease_seconds, last_poll_at=current)
        .returning(MailboxState.uidvalidity, MailboxState.last_uid)
    ).first()
    if result is None:
        return None
    return MailboxPosition(result.uidvalidity, result.last_uid or 0)


def mailbox_advanced(
    session: Session,
    tenant_id: str,
    account_id: str,
    position: MailboxPosition,
    count: int,
    lease_until: float,
) -> None:
    """Remember how far a poll got (called after each chunk, so a crash re-reads little)
    and extend the poller's lease: a long backlog is read by one worker to the end."""
    session.execute(
        update(MailboxState)
        .where(MailboxState.tenant_id == tenant_id, MailboxState.account_id == account_id)
        .values(
            uidvalidity=position.uidvalidity,
            last_uid=position.last_uid,
            processed=MailboxState.processed + count,
            lease_until=lease_until,
        )
    )


def mailbox_succeeded(
    session: Session, tenant_id: str, account_id: str, interval: float, current: float
) -> None:
    session.execute(
        update(MailboxState)
        .where(MailboxState.tenant_id == tenant_id, MailboxState.account_id == account_id)
        .values(
            lease_until=None,
            failures=0,
            last_error=None,
            last_success_at=current,
            next_poll_at=current + interval,
        )
    )


def mailbox_failed(
    session: Session,
    tenant_id: str,
    account_id: str,
    error: str,
    interval: float,
    current: float,
) -> float:
    """Record a failed poll; the next try waits twice as long as the last (capped).
    Returns the delay."""
    state = session.get(MailboxState, (tenant_id, account_id))
    failures = (state.failures if state else 0) + 1
    delay = min(interval * 2 ** (failures - 1), MAX_BACKOFF)
    session.execute(
        update(MailboxState)
        .where(MailboxState.tenant_id == tenant_id, MailboxState.account_id == account_id)
        .values(
            lease_until=None,
            failures=failures,
            last_error=error[:2000],
            next_poll_at=current + delay,
        )
    )
    return delay


def tenant_mailboxes(session: Session, tenant_id: str) -> list[tuple[str, str]]:
    """The tenant's accounts that have a mailbox."""
    query = select(Account.tenant_id, Account.id).where(
        Account.tenant_id == tenant_id, Account.imap_host.is_not(None)
    )
    return [(row.tenant_id, row.id) for row in session.execute(query)]


def mailbox_record(state: MailboxState | None) -> dict[str, Any] | None:
    """How the account's mailbox polling stands, as the API shows it."""
    if state is None:
        return None
    return {
        "last_poll_at": unix_seconds(state.last_poll_at),
        "last_success_at": unix_seconds(state.last_success_at),
        "next_poll_at": unix_seconds(state.next_poll_at),
        "failures": state.failures,
        "last_error": state.last_error,
        "processed": state.processed,
    }
