"""Bring a genro-mail-proxy instance over: tenants, accounts, API keys and unsent messages.

The source is the instance's SQLite database (``mail_service.db``), opened read-only; its
secrets (``ENC:`` + base64 of a 12-byte nonce and the AES-256-GCM ciphertext) are decrypted
with that instance's key and sealed again with this instance's SecretBox. Tenant API keys
come over as they are: both systems store the SHA-256 hex digest of the key, so the clients'
keys keep working. Every step skips what is already here, so running it twice changes
nothing the second time.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts import Account, upsert_account
from .api_keys import ApiKey, issue_api_key
from .errors import ConfigurationError, InvalidInput
from .message_validation import MessageLimits
from .messages import enqueue_messages
from .secrets_box import SecretBox
from .suspensions import suspend
from .tenants import Tenant, create_tenant

DATABASE_NAME = "mail_service.db"
KEY_FILE_NAME = ".encryption_key"  # genro-mail-proxy's development key file
KEY_ENV = "MAIL_PROXY_ENCRYPTION_KEY"
SECRETS_FILE = Path("/run/secrets/encryption_key")
ENCRYPTED_PREFIX = "ENC:"
SHA256_HEX = frozenset("0123456789abcdef")
MESSAGE_BATCH = 500

Progress = Callable[[str, int], None]


def genro_database(path: Path) -> Path:
    """The database file of an instance directory, or the file itself."""
    database = path / DATABASE_NAME if path.is_dir() else path
    if not database.is_file():
        raise InvalidInput(f"{database}: no genro-mail-proxy database there")
    return database


def genro_key(database: Path, given: str | None = None) -> bytes | None:
    """The instance's encryption key, looked up where genro-mail-proxy looks: the value
    given, MAIL_PROXY_ENCRYPTION_KEY, /run/secrets/encryption_key, then the instance
    directory's .encryption_key. None when there is none (its secrets are then in clear)."""
    if given:
        return _decode_key(given.encode(), "--genro-key")
    if os.environ.get(KEY_ENV):
        return _decode_key(os.environ[KEY_ENV].encode(), KEY_ENV)
    for candidate in (SECRETS_FILE, database.parent / KEY_FILE_NAME):
        if candidate.is_file():
            return _decode_key(candidate.read_bytes().strip(), str(candidate))
    return None


def _decode_key(raw: bytes, origin: str) -> bytes:
    """32 raw bytes (genro's secrets file) or their base64 (its environment variable)."""
    if len(raw) == 32:
        return raw
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 32:
        raise ConfigurationError(f"{origin}: not a 32-byte key (raw, or base64 of 32 bytes)")
    return key


def open_secret(value: str | None, key: bytes | None, what: str) -> str | None:
    """A genro stored secret in clear: ``ENC:`` values decrypted with its key."""
    if not value or not value.startswith(ENCRYPTED_PREFIX):
        return value or None
    if key is None:
        raise ConfigurationError(
            f"{what} is encrypted: give the instance's key with --genro-key or "
            f"{KEY_ENV} (base64), as genro-mail-proxy had it"
        )
    try:
        raw = base64.b64decode(value[len(ENCRYPTED_PREFIX) :])
        return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode()
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise ConfigurationError(f"{what}: cannot be decrypted with the key given") from exc


@dataclass
class GenroInstance:
    """The rows read from a genro-mail-proxy database."""

    tenants: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    messages: list[dict[str, Any]]


def read_genro(database: Path) -> GenroInstance:
    """Read the instance without changing it (the file is opened read-only)."""
    uri = f"{database.resolve().as_uri()}?mode=ro"
    with _connect(uri) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"tenants", "accounts", "messages"} - tables
        if missing:
            raise InvalidInput(f"{database}: not a genro-mail-proxy database (no {missing})")
        tenants = _rows(conn, "SELECT * FROM tenants ORDER BY id")
        accounts = _rows(conn, "SELECT * FROM accounts ORDER BY tenant_id, id")
        # Not yet sent: smtp_ts is set once an attempt ended (sent or failed for good).
        messages = _rows(
            conn, "SELECT * FROM messages WHERE smtp_ts IS NULL ORDER BY created_at, pk"
        )
    return GenroInstance(tenants, accounts, messages)


def _connect(uri: str) -> Any:
    conn = sqlite3.connect(uri, uri=True)
    conn.row_factory = sqlite3.Row
    return closing(conn)


def _rows(conn: sqlite3.Connection, query: str) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(query)]


@dataclass
class ImportSummary:
    tenants: int = 0
    accounts: int = 0
    api_keys: int = 0
    messages: int = 0
    already_here: dict[str, int] = field(default_factory=dict)
    # (tenant id, why) of tenants whose key could not come over; a new one is issued.
    keys_not_kept: list[tuple[str, str]] = field(default_factory=list)
    # tenant id -> key issued in place of one that could not come over (shown once).
    new_keys: dict[str, str] = field(default_factory=dict)
    # (tenant id, message id, why) of messages that could not come over.
    messages_refused: list[tuple[str, str, str]] = field(default_factory=list)
    # tenant/account of accounts that log in without TLS, as they did in genro
    # (imported with allow_insecure_auth: true).
    insecure_auth: list[str] = field(default_factory=list)

    def skipped(self, kind: str, count: int = 1) -> None:
        self.already_here[kind] = self.already_here.get(kind, 0) + count


def import_genro(
    session: Session,
    box: SecretBox,
    source: GenroInstance,
    key: bytes | None,
    limits: MessageLimits,
    progress: Progress | None = None,
) -> ImportSummary:
    """Create what the source has and this instance lacks; nothing here is overwritten."""
    summary = ImportSummary()
    step = progress or (lambda _what, _count: None)
    for row in source.tenants:
        _import_tenant(session, box, row, summary)
        step("tenants", 1)
    for row in source.accounts:
        _import_account(session, box, row, key, summary)
        step("accounts", 1)
    for batch in _batches(source.messages, MESSAGE_BATCH):
        _import_messages(session, box, batch, limits, summary)
        step("messages", len(batch))
    return summary


def _batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _json(value: Any) -> Any:
    if isinstance(value, str) and value:
        return json.loads(value)
    return value or None


def _timestamp(value: Any) -> float | None:
    """genro's Timestamp columns hold Unix seconds or SQLite's 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except ValueError:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()


def _import_tenant(
    session: Session, box: SecretBox, row: dict[str, Any], summary: ImportSummary
) -> None:
    if session.get(Tenant, row["id"]) is not None:
        summary.skipped("tenants")
    else:
        data: dict[str, Any] = {
            "id": row["id"],
            "name": row.get("name"),
            "client_base_url": row.get("client_base_url"),
            "client_sync_path": row.get("client_sync_path"),
            "client_attachment_path": row.get("client_attachment_path"),
            "rate_limits": _json(row.get("rate_limits")),
            "active": bool(row.get("active", 1)),
            "client_auth": _json(row.get("client_auth")),
        }
        large_file_config = _json(row.get("large_file_config"))
        if large_file_config:
            data["large_file_config"] = large_file_config
        # A column genro left empty takes mailproxy's default (null is refused where a
        # field has one, e.g. the sync path).
        data = {key: value for key, value in data.items() if value is not None}
        create_tenant(session, box, data)
        _import_suspensions(session, row)
        summary.tenants += 1
    _import_key(session, row, summary)


def _import_suspensions(session: Session, row: dict[str, Any]) -> None:
    suspended = row.get("suspended_batches") or ""
    if suspended == "*":
        suspend(session, row["id"])
    for batch_code in sorted(b for b in suspended.split(",") if b and b != "*"):
        suspend(session, row["id"], batch_code)


def _import_key(session: Session, row: dict[str, Any], summary: ImportSummary) -> None:
    """genro stores sha256(key).hexdigest(), the very form mailproxy looks keys up by."""
    key_hash = (row.get("api_key_hash") or "").strip()
    if not key_hash:
        return
    if session.scalar(select(ApiKey.pk).where(ApiKey.key_hash == key_hash)) is not None:
        summary.skipped("api_keys")
        return
    if len(key_hash) != 64 or not set(key_hash) <= SHA256_HEX:
        summary.keys_not_kept.append((row["id"], "its stored hash is not a SHA-256 digest"))
        # One replacement per tenant: a tenant that has a key here already gets none.
        if session.scalar(select(ApiKey.pk).where(ApiKey.tenant_id == row["id"])) is None:
            summary.new_keys[row["id"]] = issue_api_key(session, row["id"], name="imported")
        return
    session.add(
        ApiKey(
            tenant_id=row["id"],
            key_hash=key_hash,
            key_prefix=None,
            name="genro-mail-proxy",
            expires_at=_timestamp(row.get("api_key_expires_at")),
        )
    )
    session.flush()
    summary.api_keys += 1


def _smtp_tls(use_tls: Any, port: int) -> bool | None:
    """genro: 1 on port 465 is implicit TLS, 1 elsewhere STARTTLS, 0 plain, NULL auto."""
    if use_tls is None:
        return None
    if not use_tls:
        return False
    return True if port == 465 else None


def _import_account(
    session: Session,
    box: SecretBox,
    row: dict[str, Any],
    key: bytes | None,
    summary: ImportSummary,
) -> None:
    if session.get(Account, (row["tenant_id"], row["id"])) is not None:
        summary.skipped("accounts")
        return
    what = f"account {row['tenant_id']}/{row['id']}"
    port = int(row["port"])
    data: dict[str, Any] = {
        "tenant_id": row["tenant_id"],
        "id": row["id"],
        "host": row["host"],
        "port": port,
        "user": row.get("user"),
        "password": open_secret(row.get("password"), key, f"{what}: password"),
        "use_tls": _smtp_tls(row.get("use_tls"), port),
        "ttl": row.get("ttl") or 300,
        "batch_size": row.get("batch_size"),
        "limit_per_minute": row.get("limit_per_minute"),
        "limit_per_hour": row.get("limit_per_hour"),
        "limit_per_day": row.get("limit_per_day"),
        "limit_behavior": row.get("limit_behavior") or "defer",
        "is_pec": bool(row.get("is_pec_account")),
    }
    if row.get("imap_host"):
        imap_port = int(row.get("imap_port") or 993)
        data.update(
            imap_host=row["imap_host"],
            imap_port=imap_port,
            imap_user=row.get("imap_user") or row.get("user"),
            imap_password=open_secret(row.get("imap_password"), key, f"{what}: imap_password"),
            imap_tls=True if imap_port == 993 else None,
            imap_folder=row.get("imap_folder") or "INBOX",
        )
    if data["use_tls"] is False and data["user"]:
        # genro sent these credentials over plain SMTP; mailproxy refuses that unless the
        # account says so. Kept as it ran, and listed so the operator can turn TLS on.
        data["allow_insecure_auth"] = True
        summary.insecure_auth.append(f"{row['tenant_id']}/{row['id']}")
    upsert_account(session, box, data)
    summary.accounts += 1


def _message(row: dict[str, Any]) -> dict[str, Any]:
    """A genro queue row as the message its client submitted (the API shapes match)."""
    payload = _json(row["payload"]) or {}
    return {
        **payload,
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "account_id": row.get("account_id"),
        "priority": int(row["priority"]) if row.get("priority") is not None else 2,
        "deferred_ts": row.get("deferred_ts"),
        "batch_code": row.get("batch_code"),
    }


def _import_messages(
    session: Session,
    box: SecretBox,
    rows: list[dict[str, Any]],
    limits: MessageLimits,
    summary: ImportSummary,
) -> None:
    result = enqueue_messages(session, None, [_message(r) for r in rows], limits, 2, box)
    summary.messages += result.queued
    tenant_of = {r["id"]: r["tenant_id"] for r in rows}
    for rejected in result.rejected:
        if rejected["reason"] == "duplicate id":
            summary.skipped("messages")
        else:
            tenant_id = tenant_of.get(rejected["id"], "")
            summary.messages_refused.append((tenant_id, rejected["id"], rejected["reason"]))
