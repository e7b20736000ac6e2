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
    select,
    true,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, now
from .errors import Conflict, InvalidInput, NotFound
from .secrets_box import SecretBox
from .tenants import get_tenant

LIMIT_BEHAVIORS = ("defer", "reject")


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
    created_at: Mapped[float] = mapped_column(Float, default=now, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now, nullable=False)


ACCOUNT_FIELDS = (
    "host",
    "port",
    "user",
    "use_tls",
    "tls_verify",
    "ttl",
    "batch_size",
    "limit_per_minute",
    "limit_per_hour",
    "limit_per_day",
    "limit_behavior",
    "is_pec",
    "is_default",
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

    def __repr__(self) -> str:  # never print the password
        return f"SmtpEndpoint({self.tenant_id}/{self.account_id} {self.host}:{self.port})"


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


def upsert_account(session: Session, box: SecretBox, data: dict[str, Any]) -> Account:
    """Create the account or update the fields given; a password is stored encrypted."""
    get_tenant(session, data["tenant_id"])
    behavior = data.get("limit_behavior")
    if behavior is not None and behavior not in LIMIT_BEHAVIORS:
        raise InvalidInput(
            "limit_behavior must be defer or reject",
            {"limit_behavior": [f"'{behavior}' is not one of defer, reject"]},
        )
    account = session.get(Account, (data["tenant_id"], data["id"]))
    if account is None:
        if "host" not in data or "port" not in data:
            raise InvalidInput(
                "a new account needs host and port",
                {
                    f: ["Missing data for required field."]
                    for f in ("host", "port")
                    if f not in data
                },
            )
        account = Account(tenant_id=data["tenant_id"], id=data["id"])
        session.add(account)
    for field in ACCOUNT_FIELDS:
        if field in data:
            setattr(account, field, data[field])
    if "password" in data:
        account.password_enc = box.encrypt(data["password"]) if data["password"] else None
    if data.get("is_default"):
        for other in list_accounts(session, data["tenant_id"]):
            if other.id != account.id:
                other.is_default = False
    session.flush()
    return account


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
    )


def account_record(account: Account) -> dict[str, Any]:
    """An account as the API shows it: the password never, only whether one is set."""
    record: dict[str, Any] = {field: getattr(account, field) for field in ACCOUNT_FIELDS}
    record.update(
        id=account.id,
        tenant_id=account.tenant_id,
        has_password=bool(account.password_enc),
        failing_since=int(account.failing_since) if account.failing_since else None,
        failing_reason=account.failing_reason,
    )
    return record
