"""SMTP accounts: where a tenant's mail leaves from, with encrypted credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    false,
    select,
    true,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session

from .db import Base, now
from .errors import Conflict, InvalidInput, NotFound
from .secrets_box import SecretBox
from .tenants import get_tenant

LIMIT_BEHAVIORS = ("defer", "reject")
IMAP_PROCESSED_ACTIONS = ("seen", "move")


class Account(Base):
    __tablename__ = "accounts"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    port: Mapped[int] = mapped_column(Integer, nullable=False)
    user: Mapped[str | None] = mapped_column(String(255))
    password_enc: Mapped[str | None] = mapped_column(Text)
    # True: implicit TLS (SMTPS); False: plain; None: STARTTLS when the server offers it.
    use_tls: Mapped[bool | None] = mapped_column(Boolean)
    # Certificates are verified unless an operator opts out for this account (it shows).
    tls_verify: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true(), nullable=False
    )
    # Credentials go only over TLS (SMTPS or STARTTLS) unless the account says otherwise.
    allow_insecure_auth: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), nullable=False
    )
    ttl: Mapped[int] = mapped_column(Integer, default=300, nullable=False)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    limit_per_hour: Mapped[int | None] = mapped_column(Integer)
    limit_per_day: Mapped[int | None] = mapped_column(Integer)
    limit_behavior: Mapped[str] = mapped_column(String(16), default="defer", nullable=False)
    is_pec: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Set when the server refused the account's credentials; cleared by the next success.
    failing_since: Mapped[float | None] = mapped_column(Float)
    failing_reason: Mapped[str | None] = mapped_column(Text)
    # VERP: with a bounce address "bounces@example.com" the envelope sender of each message
    # is "bounces+m<message pk>-<token>@example.com" (verp.py), so a bounce is matched even
    # by servers that drop the original's headers.
    bounce_address: Mapped[str | None] = mapped_column(String(255))
    # The mailbox where bounces and PEC receipts arrive (polled by beat when imap_host is set).
    imap_host: Mapped[str | None] = mapped_column(String(255))
    imap_port: Mapped[int | None] = mapped_column(Integer)
    imap_user: Mapped[str | None] = mapped_column(String(255))
    imap_password_enc: Mapped[str | None] = mapped_column(Text)
    # True: implicit TLS (IMAPS); False: plain; None: STARTTLS when the server offers it.
    imap_tls: Mapped[bool | None] = mapped_column(Boolean)
    imap_tls_verify: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true(), nullable=False
    )
    imap_folder: Mapped[str] = mapped_column(
        String(255), default="INBOX", server_default="INBOX", nullable=False
    )
    # What happens to a processed bounce or receipt: "seen" flags it, "move" moves it.
    imap_processed: Mapped[str] = mapped_column(
        String(16), default="seen", server_default="seen", nullable=False
    )
    imap_processed_folder: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float, default=now, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now, nullable=False)


ACCOUNT_FIELDS = (
    "host",
    "port",
    "user",
    "use_tls",
    "tls_verify",
    "allow_insecure_auth",
    "ttl",
    "batch_size",
    "limit_per_minute",
    "limit_per_hour",
    "limit_per_day",
    "limit_behavior",
    "is_pec",
    "is_default",
    "bounce_address",
    "imap_host",
    "imap_port",
    "imap_user",
    "imap_tls",
    "imap_tls_verify",
    "imap_folder",
    "imap_processed",
    "imap_processed_folder",
)


@dataclass(frozen=True)
class SmtpEndpoint:
    """What a sender needs to open a connection; plain values, safe to cache per worker."""

    tenant_id: str
    account_id: str
    host: str
    port: int
    user: str | None
    password: str | None
    use_tls: bool | None
    ttl: int
    tls_verify: bool = True
    allow_insecure_auth: bool = False
    # Most messages one SMTP session carries before it is ended (QUIT) and a new one opened;
    # None: no limit but the ttl.
    batch_size: int | None = None

    bounce_address: str | None = None

    def __repr__(self) -> str:  # never print the password
        return f"SmtpEndpoint({self.tenant_id}/{self.account_id} {self.host}:{self.port})"


@dataclass(frozen=True)
class ImapEndpoint:
    """Where an account's bounces and receipts are read; plain values, password in clear."""

    tenant_id: str
    account_id: str
    host: str
    port: int
    user: str | None
    password: str | None
    tls: bool | None
    tls_verify: bool
    folder: str
    processed: str
    processed_folder: str | None
    is_pec: bool

    def __repr__(self) -> str:  # never print the password
        return f"ImapEndpoint({self.tenant_id}/{self.account_id} {self.host}:{self.port})"


def get_account(session: Session, tenant_id: str, account_id: str) -> Account:
    account = session.get(Account, (tenant_id, account_id))
    if account is None:
        raise NotFound(f"account '{account_id}' of tenant '{tenant_id}' does not exist")
    return account


def list_accounts(session: Session, tenant_id: str | None = None) -> list[Account]:
    query = select(Account).order_by(Account.tenant_id, Account.id)
    if tenant_id is not None:
        query = query.where(Account.tenant_id == tenant_id)
    return list(session.scalars(query))


# Where processed mail goes with imap_processed "move" when no folder is named.
DEFAULT_PROCESSED_FOLDER = "Processed"


def upsert_account(
    session: Session, box: SecretBox, data: dict[str, Any], default_ttl: int = 300
) -> Account:
    """Create the account or update the fields given; a password is stored encrypted.
    A new account without ``ttl`` gets ``default_ttl`` (MAILPROXY_SMTP_POOL_TTL)."""
    get_tenant(session, data["tenant_id"])
    behavior = data.get("limit_behavior")
    if behavior is not None and behavior not in LIMIT_BEHAVIORS:
        raise InvalidInput(
            "limit_behavior must be defer or reject",
            {"limit_behavior": [f"'{behavior}' is not one of defer, reject"]},
        )
    _check_imap_fields(data)
    account = session.get(Account, (data["tenant_id"], data["id"]))
    if account is None:
        if "host" not in data or "port" not in data:
            # Without host and port this is an update, of an account that does not exist.
            raise NotFound(
                f"account '{data['id']}' of tenant '{data['tenant_id']}' does not exist: "
                "give host and port to create it"
            )
        account = Account(tenant_id=data["tenant_id"], id=data["id"], ttl=default_ttl)
        session.add(account)
    for field in ACCOUNT_FIELDS:
        if field in data:
            setattr(account, field, data[field])
    if "password" in data:
        account.password_enc = box.encrypt(data["password"]) if data["password"] else None
    if "imap_password" in data:
        password = data["imap_password"]
        account.imap_password_enc = box.encrypt(password) if password else None
    if account.imap_processed == "move" and not account.imap_processed_folder:
        account.imap_processed_folder = DEFAULT_PROCESSED_FOLDER
    if data.get("is_default"):
        for other in list_accounts(session, data["tenant_id"]):
            if other.id != account.id:
                other.is_default = False
    session.flush()
    return account


def _check_imap_fields(data: dict[str, Any]) -> None:
    action = data.get("imap_processed")
    if action is not None and action not in IMAP_PROCESSED_ACTIONS:
        raise InvalidInput(
            "imap_processed must be seen or move",
            {"imap_processed": [f"'{action}' is not one of seen, move"]},
        )
    address = data.get("bounce_address")
    if address is not None and (address.count("@") != 1 or "+" in address.split("@")[0]):
        raise InvalidInput(
            "bounce_address must be one address whose local part has no '+'",
            {"bounce_address": ["mailproxy adds '+<message>' to the local part itself"]},
        )


def delete_account(session: Session, tenant_id: str, account_id: str) -> None:
    """Remove an account; refused while messages still wait to leave through it."""
    from .messages import account_has_waiting_messages  # messages depends on accounts

    account = get_account(session, tenant_id, account_id)
    if account_has_waiting_messages(session, tenant_id, account_id):
        raise Conflict(
            f"account '{account_id}' still has messages waiting; delete or deliver them first"
        )
    session.delete(account)
    session.flush()


def smtp_endpoint(account: Account, box: SecretBox) -> SmtpEndpoint:
    return SmtpEndpoint(
        tenant_id=account.tenant_id,
        account_id=account.id,
        host=account.host,
        port=account.port,
        user=account.user,
        password=box.decrypt(account.password_enc) if account.password_enc else None,
        use_tls=account.use_tls,
        ttl=account.ttl,
        tls_verify=account.tls_verify,
        allow_insecure_auth=account.allow_insecure_auth,
        bounce_address=account.bounce_address,
        batch_size=account.batch_size,
    )


def imap_endpoint(account: Account, box: SecretBox) -> ImapEndpoint | None:
    """The account's bounce/receipt mailbox, None when it has none."""
    if not account.imap_host:
        return None
    tls = account.imap_tls
    return ImapEndpoint(
        tenant_id=account.tenant_id,
        account_id=account.id,
        host=account.imap_host,
        port=account.imap_port or (993 if tls else 143),
        user=account.imap_user,
        password=box.decrypt(account.imap_password_enc) if account.imap_password_enc else None,
        tls=tls,
        tls_verify=account.imap_tls_verify,
        folder=account.imap_folder,
        processed=account.imap_processed,
        processed_folder=account.imap_processed_folder,
        is_pec=account.is_pec,
    )


def account_record(account: Account) -> dict[str, Any]:
    """An account as the API shows it: the password never, only whether one is set."""
    record: dict[str, Any] = {field: getattr(account, field) for field in ACCOUNT_FIELDS}
    record.update(
        id=account.id,
        tenant_id=account.tenant_id,
        has_password=bool(account.password_enc),
        has_imap_password=bool(account.imap_password_enc),
        failing_since=int(account.failing_since) if account.failing_since else None,
        failing_reason=account.failing_reason,
        imap_status=_mailbox_status(account),
    )
    return record


def _mailbox_status(account: Account) -> dict[str, Any] | None:
    from .mailboxes import MailboxState, mailbox_record  # mailboxes depends on accounts

    session = object_session(account)
    if session is None or not account.imap_host:
        return None
    return mailbox_record(session.get(MailboxState, (account.tenant_id, account.id)))
