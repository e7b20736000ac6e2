"""Bounces and PEC receipts end to end: mailproxy sends through a real SMTP server, the
bounce or receipt is dropped into a real Dovecot mailbox, beat polls it over IMAP, and the
event reaches the client application through the delivery reports."""

from __future__ import annotations

import re
import uuid
from email import message_from_bytes
from email.policy import default

import pytest
from imapclient import IMAPClient
from sqlalchemy import create_engine, text

from tests.support.client_app import ClientApp
from tests.support.returned_mail import auto_reply, dsn, pec_receipt, plain_bounce
from tests.support.stack import Stack, make_messages, wait_until

FAST = {
    "report_sync_interval": 0.5,
    "report_heartbeat": 3.0,
    "sweep_interval": 0.5,
    "imap_poll_interval": 0.5,
    "imap_timeout": 5.0,
}


@pytest.fixture
def stack(tmp_path, postgres_url, redis_url):
    stack = Stack(tmp_path, postgres_url, redis_url, **FAST)
    yield stack
    stack.stop()


def _mailbox(dovecot, user: str) -> IMAPClient:
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login(user, "secret")
    return client


def _fresh_folder(dovecot, user: str) -> str:
    folder = f"t-{uuid.uuid4().hex[:8]}"
    with _mailbox(dovecot, user) as client:
        client.create_folder(folder)
    return folder


def _deliver(dovecot, user: str, folder: str, *mails: bytes) -> None:
    with _mailbox(dovecot, user) as client:
        for mail in mails:
            client.append(folder, mail)


def _unseen(dovecot, user: str, folder: str) -> int:
    with _mailbox(dovecot, user) as client:
        client.select_folder(folder, readonly=True)
        return len(client.search(["UNSEEN"]))


def _tenant(stack: Stack, smtp_port: int, client: ClientApp, account: dict) -> str:
    key = stack.setup_tenant(smtp_port, account=account)
    body = {"client_base_url": client.url, "client_sync_path": "/proxy_sync"}
    assert stack.call("PUT", "/tenant/acme", token=key, json=body).status_code == 200
    return key


def _sent(smtp_sink, recipient: str):
    return next(m for m in smtp_sink.messages if recipient in m.rcpt_tos)


def test_bounces_reach_the_client_and_hard_ones_suppress_the_address(
    stack, smtp_sink, client_app, dovecot
):
    folder = _fresh_folder(dovecot, "bounce")
    imap = {"imap_host": "127.0.0.1", "imap_port": dovecot.port, "imap_tls": False}
    key = _tenant(
        stack,
        smtp_sink.port,
        client_app,
        {
            **imap,
            "bounce_address": "bounces@example.com",
            "imap_user": "bounce",
            "imap_password": "secret",
            "imap_folder": folder,
        },
    )
    # A second mailbox of the same tenant with a wrong password: it fails alone.
    broken = {"id": "broken", "host": "127.0.0.1", "port": smtp_sink.port, "use_tls": False}
    broken.update(imap, imap_user="other", imap_password="wrong", imap_folder="INBOX")
    assert stack.call("POST", "/account", token=key, json=broken).status_code == 200

    messages = make_messages(3, cc=[], account_id="main")
    stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})
    stack.start_worker("w1", concurrency=2, beat=True)
    stack.wait_all_status(3, "sent", 30)

    hard, soft = _sent(smtp_sink, "user0@example.org"), _sent(smtp_sink, "user1@example.org")
    # The return path names the message and a token that cannot be guessed from it.
    assert re.fullmatch(r"bounces\+m\d+-[a-z2-7]{8}@example\.com", soft.mail_from), soft.mail_from
    original = message_from_bytes(hard.data, policy=default)
    hard_dsn = dsn(
        hard.mail_from,
        "user0@example.org",
        "5.1.1",
        "550 5.1.1 <user0@example.org>: Recipient address rejected: User unknown",
        {"Message-ID": original["Message-ID"], "X-Mailproxy-ID": "MSG-00000"},
    )
    # No header of the original comes back: only the VERP address names the message.
    soft_bounce = plain_bounce(
        soft.mail_from, "user1@example.org", "Remote host said: 452 4.2.2 Mailbox full"
    )
    _deliver(dovecot, "bounce", folder, hard_dsn, soft_bounce, auto_reply("shop@example.com"))
    _deliver(dovecot, "bounce", folder, b"\x00\xff garbage that is no mail at all\r\n")

    entries = wait_until(
        lambda: (b := [e for e in client_app.received if "bounce_ts" in e]) and len(b) >= 2 and b,
        30,
    )
    by_id = {entry["id"]: entry for entry in entries}
    assert by_id["MSG-00000"]["bounce_type"] == "hard"
    assert by_id["MSG-00000"]["bounce_code"] == "5.1.1"
    assert "User unknown" in by_id["MSG-00000"]["bounce_reason"]
    assert by_id["MSG-00001"]["bounce_type"] == "soft"
    assert by_id["MSG-00001"]["bounce_code"] == "4.2.2"

    listed = stack.call("GET", "/suppressions", token=key).json
    assert [s["address"] for s in listed["suppressions"]] == ["user0@example.org"]
    assert listed["suppressions"][0]["message_id"] == "MSG-00000"
    again = make_messages(1, prefix="AGAIN", cc=[], to=["User0@Example.org"], account_id="main")
    answer = stack.call("POST", "/commands/add-messages", token=key, json={"messages": again})
    assert answer.json["queued"] == 0
    assert "suppression list" in answer.json["rejected"][0]["reason"]
    assert stack.call("DELETE", "/suppression/user0@example.org", token=key).status_code == 200
    answer = stack.call("POST", "/commands/add-messages", token=key, json={"messages": again})
    assert answer.json["queued"] == 1

    # Bounces are flagged; the auto-reply and the garbage stay unseen for a person.
    wait_until(lambda: _unseen(dovecot, "bounce", folder) == 2, 10)
    # The inbound log says what became of each, including the mail left unseen. The unseen
    # count is already 2 before the garbage is read (it stays unseen), so wait for its entry.
    log = wait_until(
        lambda: (
            (
                entries := stack.call("GET", "/inbound-mail?account_id=main", token=key).json[
                    "inbound_mail"
                ]
            )
            and len(entries) >= 4
            and entries
        ),
        30,
    )
    became = sorted((e["kind"], e["outcome"], e["message_id"] or "-") for e in log)
    assert became == [
        ("auto_reply", "ignored", "-"),
        ("bounce", "recorded", "MSG-00000"),
        ("bounce", "recorded", "MSG-00001"),
        ("not_recognised", "ignored", "-"),
    ], became
    accounts = {a["id"]: a for a in stack.call("GET", "/accounts", token=key).json["accounts"]}
    assert accounts["main"]["imap_status"]["failures"] == 0
    assert accounts["main"]["imap_status"]["processed"] == 4
    assert accounts["main"]["has_imap_password"] and "imap_password" not in accounts["main"]
    failing = wait_until(lambda: _account(stack, key, "broken")["imap_status"]["failures"], 10)
    assert failing >= 1
    assert "AUTHENTICATIONFAILED" in _account(stack, key, "broken")["imap_status"]["last_error"]

    # Reading the same mail again records nothing twice: the mailbox forgets where it
    # stood (as after a UIDVALIDITY change), and one bounce arrives a second time.
    engine = create_engine(stack.settings.database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE mailbox_state SET last_uid = 0, uidvalidity = NULL"))
    engine.dispose()
    _deliver(dovecot, "bounce", folder, hard_dsn)
    stack.call("POST", "/commands/run-now", token=key)
    wait_until(lambda: _account(stack, key, "main")["imap_status"]["processed"] >= 9, 15)
    events = stack.call("GET", "/message/MSG-00000", token=key).json["message"]["events"]
    assert [e["kind"] for e in events] == ["sent", "bounce"]
    assert sum("bounce_ts" in e for e in client_app.received) == 2


def _account(stack: Stack, key: str, account_id: str) -> dict:
    return stack.call("GET", f"/account/{account_id}", token=key).json["account"]


def test_pec_receipts_become_events_and_processed_mail_is_moved(
    stack, smtp_sink, client_app, dovecot
):
    folder = _fresh_folder(dovecot, "pec")
    key = _tenant(
        stack,
        smtp_sink.port,
        client_app,
        {
            "is_pec": True,
            "imap_host": "127.0.0.1",
            "imap_port": dovecot.port,
            "imap_tls": False,
            "imap_user": "pec",
            "imap_password": "secret",
            "imap_folder": folder,
            "imap_processed": "move",
            "imap_processed_folder": f"{folder}-done",
        },
    )
    message = make_messages(
        1, prefix="PEC", cc=[], to=["mario@pec.example.org"], **{"from": "shop@pec.example.com"}
    )
    stack.call("POST", "/commands/add-messages", token=key, json={"messages": message})
    stack.start_worker("w1", concurrency=2, beat=True)
    stack.wait_all_status(1, "sent", 30)
    sent = message_from_bytes(smtp_sink.messages[0].data, policy=default)
    receipts = [
        pec_receipt(kind, sent["Message-ID"], "shop@pec.example.com", "mario@pec.example.org")
        for kind in ("accettazione", "avvenuta-consegna")
    ]
    _deliver(dovecot, "pec", folder, *receipts)

    entries = wait_until(
        lambda: (p := [e for e in client_app.received if "pec_event" in e]) and len(p) >= 2 and p,
        30,
    )
    assert [e["pec_event"] for e in entries] == ["pec_acceptance", "pec_delivery"]
    assert all(e["id"] == "PEC-00000" for e in entries)
    assert entries[1]["pec_details"]["recipients"] == ["mario@pec.example.org"]
    assert entries[1]["pec_details"]["receipt_type"] == "avvenuta-consegna"
    with _mailbox(dovecot, "pec") as client:
        wait_until(lambda: client.select_folder(folder)[b"EXISTS"] == 0, 10)
        assert client.select_folder(f"{folder}-done")[b"EXISTS"] == 2
