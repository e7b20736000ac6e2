"""The reason of a failure, from the reply code, the enhanced status and the server's words."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy_models.bounce_reasons import (
    REASONS,
    BounceReason,
    Suppression,
    classify_reason,
    is_hard,
    reason_from_category,
    reasons_markdown,
    refused_command,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bounces.md"
R = BounceReason


@pytest.mark.parametrize(
    ("code", "status", "text", "reason"),
    [
        (
            550,
            "5.1.1",
            "550 5.1.1 <a@example.net>: Recipient address rejected: User unknown",
            R.USER_UNKNOWN,
        ),
        (552, "5.2.2", "552 5.2.2 Mailbox full", R.MAILBOX_FULL),
        # A precise code decides, whatever the text around it says.
        (
            552,
            "5.2.3",
            "552 5.2.3 <a@b.net>: Recipient address rejected: too long",
            R.EXCEEDED_LIMIT,
        ),
        (
            550,
            "5.7.26",
            "Unauthenticated email is not accepted due to DMARC policy",
            R.AUTHENTICATION_FAILURE,
        ),
        (550, "5.7.25", "550 5.7.25 no PTR", R.REQUIRE_PTR),
        # A general code lets the words decide.
        (550, "5.1.1", "550 5.1.1 Mailbox is full, over quota", R.MAILBOX_FULL),
        (554, "5.7.1", "554 5.7.1 Message rejected as spam", R.SPAM_DETECTED),
        (554, "5.7.1", "554 5.7.1 <a@example.org>: Relay access denied", R.RELAYING_DENIED),
        # Neither a status nor the refused command says the address is dead: lean soft.
        (550, None, "550 Unknown user a@example.net", R.FILTERED),
        # ... unless the words are a directory's answer.
        (None, None, "The recipient name is not recognized", R.USER_UNKNOWN),
        (550, None, "Unrouteable address", R.HOST_UNKNOWN),
        (
            None,
            None,
            "Name service error for name=b.invalid type=MX: Host not found, try again",
            R.NETWORK_ERROR,
        ),
        (
            554,
            "5.7.0",
            "552-5.7.0 blocked because its content presents a potential security issue",
            R.POLICY_VIOLATION,
        ),
        (
            550,
            "5.7.1",
            "Messages with multiple addresses in From: header are not accepted",
            R.NOT_COMPLIANT_RFC,
        ),
        (452, "4.3.2", "452 4.3.2 Connection rate limit exceeded.", R.TOO_MANY_CONNECTIONS),
        (421, "4.7.0", "421 4.7.0 Try again later, rate limited", R.RATE_LIMITED),
        (None, None, "all hosts have been failing for a long time", R.EXPIRED),
        (550, None, "550 5.7.1 Access denied. IP name lookup failed [192.0.2.1]", R.REQUIRE_PTR),
        (None, None, "", R.UNDETERMINED),
        (250, "2.1.5", "250 2.1.5 Ok", R.DELIVERED),
        # A number that only looks like a 2xx reply is no delivery.
        (222, None, "Error: see below. Size (in bytes): 222", R.UNDETERMINED),
        (255, "5.0.0", "255", R.UNDETERMINED),
        # Providers' documented refusal codes decide over status and words.
        (
            550,
            "5.5.0",
            "550 5.5.0 Destinataire invalide. Invalid recipient. LPN007_416",
            R.USER_UNKNOWN,
        ),
        (550, "5.2.0", "550 5.2.0 Mail rejete. Mail rejected. OFR_506 [506]", R.SPAM_DETECTED),
        (550, "5.2.0", "reason: 550 5.2.0 Mail rejected. ofr_506 [506]", R.SPAM_DETECTED),
        (550, "5.7.1", "550 5.7.1 <a@example.jp>... Access denied", R.SECURITY_ERROR),
        (451, "4.0.0", "451 Could not load DRD for domain (example.com)", R.SYSTEM_ERROR),
        (
            550,
            None,
            "550-Please turn on SMTP Authentication in your mail client. 550-mx.example.com "
            "[192.0.2.1]:2525 is not permitted to 550 relay through this server without "
            "authentication.",
            R.SECURITY_ERROR,
        ),
        (550, "5.1.0", "550 5.1.0 <b@example.com> sender rejected. AUP#CXBL", R.BLOCKED),
        (550, "5.1.0", "550 5.1.0 sender rejected. AUP#In-1310", R.TOO_MANY_CONNECTIONS),
        # Phrases that name their reason before a broader word of another one does.
        (553, "5.1.3", "553 http://www.spamhaus.org/query/bl?ip=192.0.2.9", R.BLOCKED),
        (
            550,
            "5.1.1",
            "550 5.1.1 <a@b.example> - 192.0.2.9 has sent to too many recipients this hour",
            R.RATE_LIMITED,
        ),
        (550, "5.1.1", "550 5.1.1 RCP-P2 Refused due to recipient preferences", R.FILTERED),
        (None, None, "malformed address: <a@b.example> may not follow c@d.example", R.SYNTAX_ERROR),
        (
            None,
            "5.4.4",
            "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)",
            R.NOT_ACCEPTING_MAIL,
        ),
        (None, None, "an MX or SRV record indicated no SMTP service", R.NOT_ACCEPTING_MAIL),
        (None, None, "Your message was not delivered within 3 days and 0 hours.", R.EXPIRED),
        (
            None,
            None,
            "I'm not going to try again; this message has been in the queue too long.",
            R.EXPIRED,
        ),
        (550, "5.1.1", 'procmail: Couldn\'t create "/var/mail/a" No such user', R.MAILER_ERROR),
        (
            None,
            None,
            "Sorry, you are sending to/from an address that has been blacklisted",
            R.SENDER_REJECTED,
        ),
        (
            None,
            "5.0.0",
            "Your email to group g@example.com was rejected due to spam classification. "
            "Set up SPF and DKIM.",
            R.SPAM_DETECTED,
        ),
        # A multi-line reply repeats its code inside the phrase.
        (
            550,
            "5.7.1",
            "550-5.7.1 Messages with multiple 550 5.7.1 addresses in From: header are not accepted",
            R.NOT_COMPLIANT_RFC,
        ),
    ],
)
def test_reason_of_a_failure(code, status, text, reason):
    assert classify_reason(code, status, text) is reason


def test_user_unknown_after_data_is_a_filter_and_at_mail_a_refused_sender():
    text = "550 <a@example.net>... User unknown"
    assert classify_reason(550, None, text, "RCPT") is R.USER_UNKNOWN
    assert classify_reason(550, "5.0.0", text, "DATA") is R.FILTERED
    assert classify_reason(550, None, text, "MAIL") is R.SENDER_REJECTED
    # An explicit "bad destination mailbox" status keeps its meaning at any stage.
    assert classify_reason(550, "5.1.1", "550 5.1.1 User unknown", "DATA") is R.USER_UNKNOWN
    # A mailbox status ("disabled") with a "user unknown": a filter, unless RCPT said it.
    assert classify_reason(550, "5.2.1", "550 5.2.1 <a@example.jp>... User Unknown") is R.FILTERED
    assert classify_reason(550, "5.2.1", "550 5.2.1 User Unknown", "RCPT") is R.USER_UNKNOWN
    # Under an explicit "other or undefined" status, not said to RCPT: a filter.
    assert classify_reason(550, "5.0.0", "550 Unknown user a@example.net") is R.FILTERED
    assert classify_reason(550, "5.0.0", "550 Unknown user", "RCPT") is R.USER_UNKNOWN


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("SMTP error from remote mail server after end of data: 550 no", "DATA"),
        ("550 5.1.1 unknown (in reply to RCPT TO command)", "RCPT"),
        ("SMTP error from remote mail server after MAIL FROM:<a@example.com>: 550", "MAIL"),
        (">>> DATA\n<<< 550 Unknown user", "DATA"),
        ("-------SMTP command DATA", "DATA"),
        ("550 5.1.1 user unknown", None),
        ("550 5.2.1 <a@example.jp>... User Unknown [RCPT_TO]", "RCPT"),
        ("192.0.2.25 does not like recipient.\nRemote host said: 550 5.2.1 User Unknown", "RCPT"),
        ("SMTP error from remote mail server after EHLO relay.example.net: 550 Rejected", "HELO"),
        ("SMTP error from remote mail server after initial connection: 554 go away", "CONNECT"),
    ],
)
def test_the_refused_command_is_read_from_the_text(text, command):
    assert refused_command(text) == command


def test_a_refusal_before_any_address_blocks_the_sending_host():
    assert classify_reason(550, None, "550 Rejected", "HELO") is R.BLOCKED
    assert classify_reason(554, None, "554 go away", "CONNECT") is R.BLOCKED
    # The words still decide when they name a reason.
    assert classify_reason(554, "5.7.1", "554 5.7.1 Missing reverse DNS", "CONNECT") is (
        R.REQUIRE_PTR
    )


def test_a_local_delivery_program_failing_is_a_mailer_error_unless_the_disk_is_full():
    assert classify_reason(None, "4.5.0", "71", None, "X-Unix") is R.MAILER_ERROR
    assert classify_reason(None, "5.1.1", "procmail: No such user", None, "x-unix") is (
        R.MAILER_ERROR
    )
    assert classify_reason(None, "4.3.0", "Maildir: Disk quota exceeded", None, "x-unix") is (
        R.MAILBOX_FULL
    )


def test_a_user_unknown_nobody_tied_to_the_address_leans_soft():
    # No status, no stage: a filter may answer with the same words.
    assert classify_reason(550, None, "550 <a@example.net>: User unknown") is R.FILTERED
    assert classify_reason(550, None, "550 <a@example.net>: User unknown", "RCPT") is (
        R.USER_UNKNOWN
    )
    # A directory's answer names the address dead, even under 5.0.0 and after DATA.
    text = "554 delivery error: dd This user doesn't have a example.com account"
    assert classify_reason(554, "5.0.0", text, "DATA") is R.USER_UNKNOWN
    assert classify_reason(None, "5.0.0", "Taro は Domino ディレクトリには見つかりません。") is (
        R.USER_UNKNOWN
    )


def test_a_temporary_status_is_never_hard_except_a_bad_mailbox_given_up():
    assert not is_hard(R.NOT_ACCEPTING_MAIL, "failed", "4.0.0")
    assert not is_hard(R.HOST_UNKNOWN, "failed", "4.4.0")
    assert is_hard(R.USER_UNKNOWN, "failed", "4.1.1")
    assert is_hard(R.NOT_ACCEPTING_MAIL, "failed", "5.1.10")


def test_a_reporting_mtas_own_category_names_the_reason():
    assert reason_from_category("bad-mailbox") is R.USER_UNKNOWN
    assert reason_from_category(" Quota-Issues ") is R.MAILBOX_FULL
    assert reason_from_category("something-else") is None
    assert reason_from_category(None) is None


def test_only_a_dead_address_is_hard_and_only_when_the_server_gave_up():
    hard = {reason for reason, rule in REASONS.items() if rule.hard}
    assert hard == {R.USER_UNKNOWN, R.HOST_UNKNOWN, R.HAS_MOVED, R.NOT_ACCEPTING_MAIL}
    assert is_hard(R.USER_UNKNOWN, "failed") and not is_hard(R.USER_UNKNOWN, "delayed")
    assert not is_hard(R.MAILBOX_FULL, "failed")
    for reason in hard:
        assert REASONS[reason].suppression is Suppression.AT_ONCE
    for reason in (R.SPAM_DETECTED, R.POLICY_VIOLATION, R.AUTHENTICATION_FAILURE, R.BLOCKED):
        assert REASONS[reason].suppression is Suppression.NEVER
    for reason in (R.DELIVERED, R.VACATION, R.FEEDBACK):
        assert not REASONS[reason].failure and REASONS[reason].suppression is Suppression.NEVER


def test_every_reason_has_one_row_and_the_docs_show_the_same_table():
    assert set(REASONS) == set(BounceReason)
    assert len({rule.sisimai for rule in REASONS.values()}) == len(REASONS)
    assert reasons_markdown() in DOCS.read_text(encoding="utf-8")


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    st.one_of(st.none(), st.integers(min_value=-1000, max_value=100000)),
    st.one_of(st.none(), st.text(max_size=20)),
    st.one_of(st.none(), st.text(max_size=2000)),
    st.one_of(st.none(), st.text(max_size=20)),
)
def test_any_input_gives_a_reason(code, status, text, command):
    assert classify_reason(code, status, text, command) in REASONS
