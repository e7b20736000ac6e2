"""Rules learnt from real bounces, each shown on a sample of our own in tests/data/bounces."""

from __future__ import annotations

from pathlib import Path

from mailproxy_workers.inbound.classify import classify
from mailproxy_workers.inbound.dsn import is_auto_reply, parse_bounce, usable_address

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bounces"


def _read(name: str):
    report = parse_bounce((CORPUS / name).read_bytes())
    assert report is not None, name
    return report


def _summary(name: str) -> list[tuple[str, str | None, str | None]]:
    return [(r.recipient, r.bounce_type, r.reason) for r in _read(name).recipients]


def test_cr_only_line_endings_read_like_lf():
    lf = _read("text_dragonfly_rcpt_refused.eml")
    cr = _read("text_dragonfly_cr_line_endings.eml")
    assert lf.recipients == cr.recipients
    assert _summary("text_dragonfly_cr_line_endings.eml") == [
        ("paula@example.net", "soft", "mailbox_full")
    ]


def test_cr_only_line_endings_in_an_encoded_body_read_like_lf():
    # Quoted-printable soft line breaks end in a lone CR there.
    lf = _read("rfc3464_inline_fields_workmail.eml")
    assert _read("rfc3464_inline_fields_workmail_cr.eml").recipients == lf.recipients


def test_crlf_line_endings_read_like_lf():
    raw = (CORPUS / "text_v5sendmail_transcript.eml").read_bytes()
    crlf = raw.replace(b"\n", b"\r\n")
    assert parse_bounce(crlf) == parse_bounce(raw)


def test_the_originals_sender_is_never_a_bounced_recipient():
    recipients = [r.recipient for r in _read("text_zoho_sender_not_a_recipient.eml").recipients]
    assert recipients == ["vera@example.org"]


def test_recipients_are_addresses_never_pipes_paths_or_routes():
    # Final-Recipient "@mx.example.net:nora@server" and "|/usr/local/bin/procmail" give way
    # to Original-Recipient; a bare spool path names nobody. A quoted local part stays whole.
    assert _summary("rfc3464_final_recipient_not_an_address.eml") == [
        ("nora@example.net", "hard", "user_unknown"),
        ('"max power"@example.net', "hard", "user_unknown"),
    ]
    assert usable_address("rfc822; |/usr/bin/x") == ""
    assert usable_address("rfc822; /var/spool/mail/x") == ""
    assert usable_address("rfc822; @mx.example.org") == ""
    assert usable_address('rfc822; "Jane Doe"@Example.NET') == '"jane doe"@example.net'
    assert usable_address("rfc822; <Jane@Example.NET>") == "jane@example.net"


def test_a_postfix_450_user_unknown_given_up_is_hard():
    assert _summary("rfc3464_postfix_450_user_unknown_failed.eml") == [
        ("luca@example.net", "hard", "user_unknown")
    ]


def test_html_only_exim_bounce_with_auto_submitted_is_a_bounce():
    raw = (CORPUS / "exim_html_only_auto_submitted.eml").read_bytes()
    assert is_auto_reply(raw) is False
    assert classify(raw).kind == "bounce"
    assert _summary("exim_html_only_auto_submitted.eml") == [
        ("ines@example.org", "hard", "user_unknown")
    ]


def test_gmail_error_written_inline_after_returned_was_keeps_its_codes():
    (recipient,) = _read("gmail_inline_error_returned_was.eml").recipients
    assert (recipient.smtp_code, recipient.status, recipient.reason) == (
        552,
        "5.2.2",
        "mailbox_full",
    )


def test_formats_an_rfc3464_reading_misses():
    assert _summary("text_dragonfly_dns_failure.eml") == [
        ("postmaster@nowhere.example.net", "hard", "host_unknown")
    ]
    assert _summary("text_google_groups_post_refused.eml") == [
        ("announce@googlegroups.com", "soft", "sender_rejected")
    ]
    assert _summary("rfc3464_inline_fields_workmail.eml") == [
        ("gustav@example.org", "hard", "user_unknown")
    ]
    assert _summary("text_v5sendmail_transcript.eml") == [
        ("hana@example.org", "hard", "user_unknown")
    ]
    # No address in the report: the returned original's recipient.
    assert _summary("text_v5sendmail_deferred_no_address.eml") == [
        ("ken@example.org", "soft", "expired")
    ]
    assert _summary("ses_bounce_notification.eml") == [
        ("petra@example.org", "hard", "user_unknown")
    ]


def test_a_complaint_report_is_not_a_bounce():
    raw = (CORPUS / "normal_arf_feedback_report.eml").read_bytes()
    assert parse_bounce(raw) is None
    assert classify(raw).kind != "bounce"
