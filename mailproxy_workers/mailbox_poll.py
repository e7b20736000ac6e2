"""Reads an account's bounce/receipt mailbox over IMAP and records what came back.

Only new mail is fetched (UIDs above the last one seen under the same UIDVALIDITY), with
``BODY.PEEK[]`` so reading marks nothing: a mail is flagged or moved only after its facts
are committed. A crash anywhere re-reads at most one chunk, and the inbound-mail log makes
the second reading record nothing.
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

from imapclient import IMAPClient

from mailproxy_models.accounts import Account, ImapEndpoint, imap_endpoint
from mailproxy_models.db import now, session_scope
from mailproxy_models.inbound import BouncePolicy, InboundFacts, record_inbound_mail
from mailproxy_models.log_format import log_context
from mailproxy_models.mailboxes import (
    MailboxPosition,
    claim_mailbox,
    mailbox_advanced,
    mailbox_failed,
    mailbox_succeeded,
)
from mailproxy_models.settings import Settings

from .inbound.classify import classify
from .runtime import WorkerRuntime

log = logging.getLogger(__name__)
# Mail the poller recognised: flagged or moved as the account says. Anything else stays as
# it was (unseen, in place) for a person to look at; the log records that it was read.
HANDLED_KINDS = ("bounce", "pec_receipt")


@dataclass(frozen=True)
class PollResult:
    polled: bool
    read: int = 0
    recorded: int = 0
    error: str | None = None


def poll_mailbox(
    runtime: WorkerRuntime, tenant_id: str, account_id: str, force: bool = False
) -> PollResult:
    """One poll of one mailbox; a failure is recorded on the mailbox, never raised."""
    instance = runtime.instance
    settings = instance.settings
    lease = poll_lease(settings)
    with session_scope(instance.sessions) as session:
        position = claim_mailbox(session, tenant_id, account_id, lease, now(), force)
        account = session.get(Account, (tenant_id, account_id))
        endpoint = imap_endpoint(account, instance.box) if account and position else None
    if position is None:
        return PollResult(polled=False)
    with log_context(tenant_id=tenant_id):
        return _poll_claimed(runtime, tenant_id, account_id, endpoint, position)


def _poll_claimed(
    runtime: WorkerRuntime,
    tenant_id: str,
    account_id: str,
    endpoint: ImapEndpoint | None,
    position: MailboxPosition,
) -> PollResult:
    settings = runtime.instance.settings
    instance = runtime.instance
    try:
        if endpoint is None:
            raise LookupError("the account has no IMAP mailbox any more")
        read, recorded = _read_new_mail(runtime, endpoint, position)
    except (imaplib.IMAP4.error, OSError, LookupError, ValueError) as exc:
        error = f"{endpoint or account_id}: {type(exc).__name__}: {exc}"
        with session_scope(instance.sessions) as session:
            delay = mailbox_failed(
                session, tenant_id, account_id, error, settings.imap_poll_interval, now()
            )
        log.warning("mailbox poll failed, next try in %.0f s: %s", delay, error)
        return PollResult(polled=True, error=error)
    with session_scope(instance.sessions) as session:
        mailbox_succeeded(session, tenant_id, account_id, settings.imap_poll_interval, now())
    return PollResult(polled=True, read=read, recorded=recorded)


def poll_lease(settings: Settings) -> float:
    """How long a poll may hold its mailbox before another worker may take it over: a few
    IMAP timeouts; renewed after each chunk."""
    return settings.imap_timeout * 4 + 60


def _read_new_mail(
    runtime: WorkerRuntime, endpoint: ImapEndpoint, position: MailboxPosition
) -> tuple[int, int]:
    settings = runtime.instance.settings
    read = recorded = 0
    with _connect(endpoint, settings) as client:
        uidvalidity = int(client.select_folder(endpoint.folder)[b"UIDVALIDITY"])
        last = position.last_uid if position.uidvalidity == uidvalidity else 0
        # "n:*" always matches the newest message, even below n (RFC 3501 6.4.8): filter.
        uids = sorted(uid for uid in client.search(["UID", f"{last + 1}:*"]) if uid > last)
        for chunk in _chunks(uids, settings.imap_fetch_batch):
            fetched = _fetch(client, chunk, settings.imap_max_mail_bytes)
            handled, count = _record_chunk(runtime, endpoint, chunk, fetched)
            _mark_processed(client, endpoint, handled)
            with session_scope(runtime.instance.sessions) as session:
                mailbox_advanced(
                    session,
                    endpoint.tenant_id,
                    endpoint.account_id,
                    MailboxPosition(uidvalidity, chunk[-1]),
                    len(chunk),
                    now() + poll_lease(settings),
                )
            read += len(chunk)
            recorded += count
    return read, recorded


def _fetch(client: IMAPClient, uids: list[int], max_bytes: int) -> dict[int, bytes | int]:
    """Each mail's bytes, or its size when it is too large to download."""
    sizes = client.fetch(uids, ["RFC822.SIZE"])
    small = [uid for uid in uids if int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0)) <= max_bytes]
    bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
    result: dict[int, bytes | int] = {}
    for uid in uids:
        raw = bodies.get(uid, {}).get(b"BODY[]")
        if isinstance(raw, bytes):
            result[uid] = raw
        elif uid in sizes and uid not in small:
            result[uid] = int(sizes[uid][b"RFC822.SIZE"])
    return result  # a UID missing here was expunged between SEARCH and FETCH


def _facts_and_key(endpoint: ImapEndpoint, uid: int, mail: bytes | int) -> tuple[InboundFacts, str]:
    if isinstance(mail, bytes):
        return classify(mail), hashlib.sha256(mail).hexdigest()
    summary = f"not downloaded: {mail} bytes is over MAILPROXY_IMAP_MAX_MAIL_BYTES"
    identity = f"{endpoint.account_id}/{endpoint.folder}/{uid}/{mail}".encode()
    return InboundFacts("unparseable", summary), hashlib.sha256(identity).hexdigest()


def _record_chunk(
    runtime: WorkerRuntime,
    endpoint: ImapEndpoint,
    uids: list[int],
    fetched: dict[int, bytes | int],
) -> tuple[list[int], int]:
    """Record the chunk's mail in one transaction; returns the UIDs to flag and how many
    mails were recorded as events."""
    settings = runtime.instance.settings
    policy = BouncePolicy(settings.soft_bounce_limit, settings.soft_bounce_window_days * 86400)
    handled: list[int] = []
    recorded = 0
    with session_scope(runtime.instance.sessions) as session:
        for uid in uids:
            if uid not in fetched:
                continue
            facts, key = _facts_and_key(endpoint, uid, fetched[uid])
            result = record_inbound_mail(
                session, endpoint.tenant_id, endpoint.account_id, key, facts, now(), policy
            )
            log.info(
                "mailbox %s uid %s: %s, %s (%s)",
                endpoint,
                uid,
                facts.kind,
                result.outcome,
                facts.summary,
                extra={"message_id": result.message_id, "tenant_id": endpoint.tenant_id},
            )
            recorded += result.outcome == "recorded"
            if facts.kind in HANDLED_KINDS:
                handled.append(uid)
    return handled, recorded


def _mark_processed(client: IMAPClient, endpoint: ImapEndpoint, uids: list[int]) -> None:
    if not uids:
        return
    if endpoint.processed == "move" and endpoint.processed_folder:
        if not client.folder_exists(endpoint.processed_folder):
            client.create_folder(endpoint.processed_folder)
        if client.has_capability("MOVE"):
            client.move(uids, endpoint.processed_folder)
        else:  # RFC 3501 only: copy, then delete the originals
            client.copy(uids, endpoint.processed_folder)
            client.delete_messages(uids)
            if client.has_capability("UIDPLUS"):
                client.expunge(uids)
            else:
                client.expunge()
    else:
        client.add_flags(uids, [b"\\Seen"])


def _connect(endpoint: ImapEndpoint, settings: Settings) -> IMAPClient:
    context = ssl.create_default_context(cafile=settings.imap_ca_file)
    if not endpoint.tls_verify:  # the operator opted out for this account; it shows on it
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client = IMAPClient(
        endpoint.host,
        port=endpoint.port,
        ssl=endpoint.tls is True,
        ssl_context=context,
        timeout=settings.imap_timeout,
    )
    try:
        if endpoint.tls is None and client.has_capability("STARTTLS"):
            client.starttls(context)
        if endpoint.user:
            client.login(endpoint.user, endpoint.password or "")
    except BaseException:
        client.shutdown()
        raise
    return client


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]
