"""The IMAP poller against a real Dovecot with TLS: implicit TLS, STARTTLS, certificate
checks, UIDVALIDITY, backoff of a failing mailbox. No Celery: the poll function itself."""

from __future__ import annotations

import os
import uuid

import pytest
from imapclient import IMAPClient
from sqlalchemy import select, update

from mailproxy_models.accounts import upsert_account
from mailproxy_models.db import session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.inbound import InboundMail
from mailproxy_models.instance import open_instance
from mailproxy_models.mailboxes import MailboxState, mailboxes_due
from mailproxy_models.migrate import upgrade
from mailproxy_models.settings import Settings
from mailproxy_models.tenants import create_tenant
from mailproxy_workers.mailbox_poll import poll_mailbox
from mailproxy_workers.runtime import WorkerRuntime
from tests.models.factories import enqueue, message
from tests.support.returned_mail import dsn


@pytest.fixture(scope="module")
def dovecot_tls():
    from tests.support.dovecot_server import Dovecot

    server = Dovecot(users={"bounce": "secret"}, tls=True).start()
    try:
        yield server
    finally:
        server.stop()


def _runtime(tmp_path, dovecot_tls, **overrides) -> WorkerRuntime:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    values = {"imap_ca_file": dovecot_tls.cafile, "imap_timeout": 5.0, "imap_poll_interval": 10.0}
    settings = Settings(data_dir=tmp_path, database_url=url, **{**values, **overrides})
    instance = open_instance(settings)
    with session_scope(instance.sessions) as session:
        create_tenant(session, instance.box, {"id": "acme"})
    return WorkerRuntime(instance, None, "test", os.getpid(), None)  # type: ignore[arg-type]


@pytest.fixture
def runtime(tmp_path, dovecot_tls):
    runtime = _runtime(tmp_path, dovecot_tls)
    yield runtime
    runtime.instance.engine.dispose()


def test_mail_over_the_size_limit_is_logged_not_downloaded(tmp_path, dovecot_tls):
    runtime = _runtime(tmp_path, dovecot_tls, imap_max_mail_bytes=1500)
    folder = _account(runtime, dovecot_tls)
    small = _bounce_for(runtime, "m1")
    large = _bounce_for(runtime, "m2").replace(b"could not be delivered", b"x" * 2000)
    with _imap(dovecot_tls) as client:
        client.append(folder, small)
        client.append(folder, large)
    result = poll_mailbox(runtime, "acme", "main")
    assert (result.read, result.recorded) == (2, 1)
    with session_scope(runtime.instance.sessions) as session:
        rows = {row.kind: row for row in session.scalars(select(InboundMail))}
        assert "over MAILPROXY_IMAP_MAX_MAIL_BYTES" in rows["unparseable"].summary
    with _imap(dovecot_tls) as client:
        client.select_folder(folder, readonly=True)
        assert client.search(["UNSEEN"]) == [2]  # left for a person
    runtime.instance.engine.dispose()


def _account(runtime, dovecot_tls, **fields):
    folder = f"t-{uuid.uuid4().hex[:8]}"
    with _imap(dovecot_tls) as client:
        client.create_folder(folder)
    values = {
        "tenant_id": "acme",
        "id": "main",
        "host": "127.0.0.1",
        "port": 25,
        "imap_host": "localhost",
        "imap_port": dovecot_tls.imaps_port,
        "imap_tls": True,
        "imap_user": "bounce",
        "imap_password": "secret",
        "imap_folder": folder,
        **fields,
    }
    with session_scope(runtime.instance.sessions) as session:
        upsert_account(session, runtime.instance.box, values)
    return folder


def _imap(dovecot_tls) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=dovecot_tls.port, ssl=False, timeout=10)
    client.login("bounce", "secret")
    return client


def _bounce_for(runtime, msg_id: str) -> bytes:
    # Each message its own recipient: a hard bounce suppresses the address for later ones.
    recipient = f"{msg_id}@example.org"
    assert enqueue(runtime.instance.sessions, [message(msg_id, to=[recipient])]).queued == 1
    headers = {"X-Mailproxy-ID": msg_id, "Message-ID": f"<{msg_id}@example.com>"}
    return dsn("a@example.com", recipient, "5.1.1", "550 5.1.1 unknown", headers)


def _state(runtime) -> MailboxState:
    with session_scope(runtime.instance.sessions) as session:
        state = session.scalar(select(MailboxState))
        session.expunge(state)
        return state


def _bounces(runtime) -> int:
    with session_scope(runtime.instance.sessions) as session:
        return len(list(session.scalars(select(MessageEvent).where(MessageEvent.kind == "bounce"))))


def test_implicit_tls_with_the_servers_certificate_reads_only_new_mail(runtime, dovecot_tls):
    folder = _account(runtime, dovecot_tls)
    with _imap(dovecot_tls) as client:
        client.append(folder, _bounce_for(runtime, "m1"))
    result = poll_mailbox(runtime, "acme", "main")
    assert (result.error, result.read, result.recorded) == (None, 1, 1)
    assert _state(runtime).last_uid == 1
    # Not due again before the interval, unless forced (run-now).
    assert not poll_mailbox(runtime, "acme", "main").polled
    with _imap(dovecot_tls) as client:
        client.append(folder, _bounce_for(runtime, "m2"))
    result = poll_mailbox(runtime, "acme", "main", force=True)
    assert (result.read, result.recorded) == (1, 1)
    assert _bounces(runtime) == 2


def test_starttls_is_used_when_offered(runtime, dovecot_tls):
    folder = _account(runtime, dovecot_tls, imap_tls=None, imap_port=dovecot_tls.port)
    with _imap(dovecot_tls) as client:
        client.append(folder, _bounce_for(runtime, "m1"))
    assert poll_mailbox(runtime, "acme", "main").recorded == 1


def test_a_new_uidvalidity_reads_everything_again_and_records_nothing_twice(runtime, dovecot_tls):
    folder = _account(runtime, dovecot_tls)
    with _imap(dovecot_tls) as client:
        client.append(folder, _bounce_for(runtime, "m1"))
    assert poll_mailbox(runtime, "acme", "main").recorded == 1
    with session_scope(runtime.instance.sessions) as session:
        session.execute(update(MailboxState).values(uidvalidity=12345, last_uid=99))
    result = poll_mailbox(runtime, "acme", "main", force=True)
    assert (result.read, result.recorded) == (1, 0)
    assert _bounces(runtime) == 1


def test_an_unverifiable_certificate_fails_the_mailbox_with_backoff(tmp_path, dovecot_tls):
    runtime = _runtime(tmp_path, dovecot_tls, imap_ca_file=None)
    instance = runtime.instance
    _account(runtime, dovecot_tls)  # the test CA is not trusted by this instance
    first = poll_mailbox(runtime, "acme", "main")
    assert first.polled and "CERTIFICATE_VERIFY_FAILED" in (first.error or "")
    state = _state(runtime)
    assert state.failures == 1 and "CERTIFICATE_VERIFY_FAILED" in state.last_error
    assert state.next_poll_at - state.last_poll_at == pytest.approx(
        instance.settings.imap_poll_interval, abs=1
    )
    poll_mailbox(runtime, "acme", "main", force=True)
    state = _state(runtime)
    assert state.failures == 2
    assert state.next_poll_at - state.last_poll_at == pytest.approx(
        2 * instance.settings.imap_poll_interval, abs=1
    )
    with session_scope(instance.sessions) as session:
        assert mailboxes_due(session, state.last_poll_at + 1) == []
    # The operator opts out of verification for this account: it works.
    with session_scope(instance.sessions) as session:
        upsert_account(
            session, instance.box, {"tenant_id": "acme", "id": "main", "imap_tls_verify": False}
        )
    assert poll_mailbox(runtime, "acme", "main", force=True).error is None
    assert _state(runtime).failures == 0
    instance.engine.dispose()


def test_each_mail_read_is_logged_with_its_message_and_tenant(runtime, dovecot_tls, caplog):
    import json
    import logging

    from mailproxy_models.log_format import JsonFormatter

    folder = _account(runtime, dovecot_tls)
    with _imap(dovecot_tls) as client:
        client.append(folder, _bounce_for(runtime, "m1"))
    with caplog.at_level(logging.INFO, logger="mailproxy_workers.mailbox_poll"):
        assert poll_mailbox(runtime, "acme", "main").recorded == 1
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if "uid" in r.msg]
    assert [(line["message_id"], line["tenant_id"]) for line in lines] == [("m1", "acme")]
    assert "bounce, recorded" in lines[0]["message"]
