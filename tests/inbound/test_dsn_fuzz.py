"""Fuzzing the bounce parser: no input makes it raise, and what it returns is well typed."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailproxy_models.bounce_reasons import BounceReason, is_hard
from mailproxy_workers.inbound.dsn import (
    BouncedRecipient,
    BounceReport,
    is_auto_reply,
    parse_bounce,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bounces"
SAMPLES = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
FORMATS = {
    "rfc3464",
    "exchange",
    "gmail",
    "yahoo",
    "postfix",
    "exim",
    "qmail",
    "ses",
    "text",
    "flufl",
}
ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")
STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")

# Reproducible in CI: no example database, the same examples on every run.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Built reports cost Hypothesis more to draw and us four parses each: fewer keep the suite fast.
FUZZ_BUILT = settings(FUZZ, max_examples=100)


def _assert_well_typed_recipient(recipient: BouncedRecipient) -> None:
    assert isinstance(recipient.recipient, str) and recipient.recipient
    assert recipient.recipient == recipient.recipient.lower()
    assert recipient.action in ACTIONS
    assert recipient.status is None or STATUS.match(recipient.status)
    if recipient.action in ("failed", "delayed"):
        assert recipient.bounce_type in ("hard", "soft")
        assert recipient.reason in {reason.value for reason in BounceReason}
        assert recipient.bounce_type == (
            "hard"
            if is_hard(BounceReason(recipient.reason), recipient.action, recipient.status)
            else "soft"
        )
    else:
        assert recipient.bounce_type is None and recipient.reason is None
    assert recipient.diagnostic is None or 0 < len(recipient.diagnostic) <= 1000
    assert recipient.remote_mta is None or isinstance(recipient.remote_mta, str)
    assert recipient.smtp_code is None or 200 <= recipient.smtp_code <= 599


def _assert_well_typed(report: BounceReport) -> None:
    assert isinstance(report, BounceReport)
    assert report.format in FORMATS
    assert isinstance(report.recipients, tuple)
    for recipient in report.recipients:
        assert isinstance(recipient, BouncedRecipient)
        _assert_well_typed_recipient(recipient)
    assert isinstance(report.correlation_ids, tuple)
    assert all(isinstance(i, str) and i for i in report.correlation_ids)
    assert len(set(report.correlation_ids)) == len(report.correlation_ids)
    message_id = report.original_message_id
    assert message_id is None or (message_id and not any(c.isspace() for c in message_id))
    assert report.reporting_mta is None or isinstance(report.reporting_mta, str)


def _check(raw: bytes) -> BounceReport | None:
    assert isinstance(is_auto_reply(raw), bool)
    report = parse_bounce(raw)
    if report is not None:
        _assert_well_typed(report)
    return report


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _check(raw)


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A corpus sample with a few byte flips, truncations, duplicated lines or boundaries."""
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for operation in draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)):
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        if operation == 0:
            raw[at] = draw(st.integers(0, 255))
        elif operation == 1:
            del raw[at:]
        elif operation == 2:
            raw[at:at] = draw(st.binary(min_size=1, max_size=40))
        else:
            raw = bytearray(_mutate_lines(bytes(raw), operation, at, draw))
    return bytes(raw)


def _mutate_lines(raw: bytes, operation: int, at: int, draw: st.DrawFn) -> bytes:
    lines = raw.split(b"\n")
    line = at % len(lines)
    if operation == 3:  # header (or any line) duplicated
        lines.insert(line, lines[line])
    elif operation == 4:  # a line dropped: blank separators, boundaries, fields
        del lines[line]
    else:  # the boundary changed in the header only, or everywhere
        found = re.search(rb'boundary="?([^";\r\n]+)', raw)
        if found:
            new = draw(st.binary(min_size=0, max_size=12).filter(lambda b: b"\n" not in b))
            count = draw(st.sampled_from([0, 1]))
            return raw.replace(found.group(1), new, count)
    return b"\n".join(lines)


@FUZZ
@given(mutated_samples())
def test_mutated_corpus_samples_never_raise(raw: bytes) -> None:
    _check(raw)


# Few, prepared values keep generation cheap: the parser, not Hypothesis, should use the time.
ADDRESS = st.builds(
    "{}{}@{}.example.net".format,
    st.sampled_from(["a", "John.Doe", "x+tag", "o'neil", "b_c-d"]),
    st.integers(0, 999),
    st.sampled_from(["mx", "Mail-1", "a.b"]),
)
STATUS_CODE = st.builds(
    "{}.{}.{}".format, st.sampled_from("245"), st.integers(0, 9), st.integers(0, 19)
)
FIELD_TEXT = st.sampled_from(
    [
        "",
        "Mailbox unavailable",
        "Utente sconosciuto \u2013 \u00abcasella\u00bb",
        "a: b; c=d (comment) <x@y>",
        "=?utf-8?q?encoded?=",
        "tab\tinside",
        "try again later",
        "\u20ac\u2026 \u00a0 non-ascii",
    ]
)


@st.composite
def recipient_blocks(draw: st.DrawFn) -> tuple[str, str, str, str]:
    address, action, status = draw(ADDRESS), draw(st.sampled_from(ACTIONS)), draw(STATUS_CODE)
    fields = [
        f"Final-Recipient: rfc822; {draw(st.sampled_from(['', '<']))}{address.upper()}>",
        f"Action: {action}",
        f"Status: {status}",
    ]
    if draw(st.booleans()):
        fields.append(f"Diagnostic-Code: smtp; 550 {status}\n folded {draw(FIELD_TEXT)}")
    if draw(st.booleans()):
        fields.append(f"X-Extra-{draw(st.integers(0, 9))}: {draw(FIELD_TEXT)}")
    return address.lower(), action, status, "\n".join(draw(st.permutations(fields)))


@st.composite
def delivery_reports(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str, str]], str]:
    """A well-formed multipart/report built from random fields, with what it should yield."""
    blocks = draw(st.lists(recipient_blocks(), min_size=1, max_size=3))
    correlation = f"mp-{draw(st.integers(0, 2**32 - 1)):08x}"
    dsn_type = draw(st.sampled_from(["message/delivery-status", "message/global-delivery-status"]))
    original_type = draw(
        st.sampled_from(["message/rfc822", "text/rfc822-headers", "message/global-headers"])
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    body = "\n\n".join(["Reporting-MTA: dns; mta.example.org"] + [b[3] for b in blocks])
    text = (
        "From: MAILER-DAEMON@mta.example.org\nTo: noreply@example.com\n"
        f"Subject: {draw(FIELD_TEXT)}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="=b="\n\n'
        f"--=b=\nContent-Type: text/plain; charset=utf-8\n\n{draw(FIELD_TEXT)}\n\n"
        f"--=b=\nContent-Type: {dsn_type}\n\n{body}\n\n"
        f"--=b=\nContent-Type: {original_type}\n\n"
        f"Message-ID: <orig@example.com>\nX-Mailproxy-ID: {correlation}\n\nbody\n--=b=--\n"
    )
    raw = text.replace("\n", newline).encode("utf-8")
    return raw, [(b[0], b[1], b[2]) for b in blocks], correlation


@FUZZ_BUILT
@given(delivery_reports())
def test_random_delivery_reports_yield_their_recipients(
    case: tuple[bytes, list[tuple[str, str, str]], str],
) -> None:
    raw, recipients, correlation = case
    report = _check(raw)
    assert report is not None and report.format == "rfc3464"
    assert [(r.recipient, r.action, r.status) for r in report.recipients] == recipients
    assert report.correlation_ids == (correlation,)
    assert report.original_message_id == "<orig@example.com>"
    assert report.reporting_mta == "mta.example.org"
    assert is_auto_reply(raw) is False


@FUZZ_BUILT
@given(delivery_reports(), st.integers(0, 10_000), st.binary(max_size=20))
def test_damaged_delivery_reports_never_raise(
    case: tuple[bytes, list[tuple[str, str, str]], str], at: int, noise: bytes
) -> None:
    raw = case[0]
    at %= len(raw)
    _check(raw[:at])
    _check(raw[:at] + noise + raw[at:])
