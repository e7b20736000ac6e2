"""What reaches a real SMTP server: every line ends in CRLF and is at most 998 octets,
subjects decode back to what the client sent, SMTPUTF8 messages carry attachments."""

from __future__ import annotations

import base64
import email
from email import policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy_models.claims import ClaimedMessage
from mailproxy_workers.composer import compose
from mailproxy_workers.delivery import AttachmentContext, deliver_one
from mailproxy_workers.smtp_pool import SmtpConnectionPool
from tests.workers.conftest import loopback_endpoint

PDF = b"%PDF-1.4 " + bytes(range(256)) * 20


def _payload(**fields):
    payload = {
        "id": "m1",
        "from": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "subject": "Hello",
        "body": "Body",
        "content_type": "plain",
    }
    payload.update(fields)
    return payload


def _assert_wire_lines(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    for number, line in enumerate(data[:-2].split(b"\r\n")):
        assert b"\n" not in line and b"\r" not in line, f"bare line end in line {number}"
        assert len(line) <= 998, f"line {number} has {len(line)} octets"


@pytest.fixture
def pool():
    pool = SmtpConnectionPool(timeout=10)
    yield pool
    pool.close_all()


SUBJECTS = {
    "long non-ASCII with spaces": "Résumé de la commande numéro 42 — détails " * 8,
    "2000 characters without spaces": "x" * 2000,
    "2000 non-ASCII characters without spaces": "é" * 2000,
    "long word among short ones": "Order " + "A" * 1500 + " shipped",
}


@pytest.mark.parametrize("subject", SUBJECTS.values(), ids=SUBJECTS.keys())
def test_the_server_gets_crlf_lines_of_at_most_998_octets_and_the_subject_back(
    smtp_sink, pool, subject
):
    message = ClaimedMessage(1, "acme", "main", "m1", _payload(subject=subject), "token")
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), message)
    assert outcome.kind == "sent", outcome
    [received] = smtp_sink.wait_for(1)
    _assert_wire_lines(received.data)
    assert str(received.message()["subject"]) == subject


@pytest.mark.parametrize("fetched", [False, True], ids=["stored base64", "fetched"])
def test_an_smtputf8_message_with_an_attachment_is_built_and_delivered(
    smtp_sink, pool, fetcher, loopback_tenant, fetched
):
    attachment = {
        "filename": "reçu.pdf",
        "storage_path": base64.b64encode(PDF).decode(),
        "fetch_mode": "base64",
    }
    payload = _payload(
        to=["Zoë <zoë@example.org>"], subject="Ihre Rechnung für März", attachments=[attachment]
    )
    context = AttachmentContext(fetcher, loopback_tenant) if fetched else None
    message = ClaimedMessage(1, "acme", "main", "m1", payload, "token")
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), message, context)
    assert outcome.kind == "sent", outcome
    [received] = smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["zoë@example.org"]
    _assert_wire_lines(received.data)
    # An SMTPUTF8 message's header is UTF-8 (message_from_bytes would not decode it).
    msg = email.message_from_string(received.data.decode("utf-8"), policy=policy.default)
    assert str(msg["subject"]) == "Ihre Rechnung für März"
    assert msg["to"].addresses[0].addr_spec == "zoë@example.org"
    assert msg["to"].addresses[0].display_name == "Zoë"
    [part] = list(msg.iter_attachments())
    assert part.get_filename() == "reçu.pdf"
    assert part.get_content() == PDF


def test_a_long_filename_is_folded_in_a_stored_base64_attachment():
    name = "rapport-" + "a" * 1500 + ".pdf"
    attachment = {"filename": name, "storage_path": base64.b64encode(b"%PDF").decode()}
    data = compose(_payload(attachments=[attachment])).as_bytes()
    _assert_wire_lines(data)
    [part] = email.message_from_bytes(data, policy=policy.default).iter_attachments()
    assert part.get_filename() == name


# Header text a client may send: any printable character, no line breaks or controls
# (refused at the door), nothing that already looks like an encoded word.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=3000).filter(
    lambda s: s == s.strip() and "=?" not in s
)


@settings(max_examples=200, deadline=None)
@given(subject=TEXT, custom=TEXT, utf8=st.booleans())
def test_every_composed_line_is_crlf_ended_and_at_most_998_octets(subject, custom, utf8):
    payload = _payload(
        subject=subject,
        headers={"X-Note": custom},
        to=["zoë@example.org" if utf8 else "a@example.org"],
    )
    envelope = compose(payload)
    _assert_wire_lines(envelope.as_bytes())
    msg = email.message_from_string(envelope.as_bytes().decode("utf-8"), policy=policy.default)
    assert str(msg["subject"]) == subject
    assert str(msg["x-note"]) == custom
