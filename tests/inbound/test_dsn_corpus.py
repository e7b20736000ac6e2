"""The bounce corpus: every sample in tests/data/bounces parses to exactly its .json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mailproxy_workers.inbound.dsn import BounceReport, is_auto_reply, parse_bounce

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bounces"
SAMPLES = sorted(CORPUS.glob("*.eml"))
REPORT_FIELDS = {"format", "recipients", "correlation_ids", "original_message_id", "reporting_mta"}
RECIPIENT_FIELDS = {
    "recipient",
    "action",
    "status",
    "bounce_type",
    "diagnostic",
    "remote_mta",
    "smtp_code",
    "reason",
}


def _expected(sample: Path) -> dict | None:
    return json.loads(sample.with_suffix(".json").read_text(encoding="utf-8"))


def _as_json(report: BounceReport | None) -> dict | None:
    # Through JSON so tuples compare equal to the lists in the expected files.
    return None if report is None else json.loads(json.dumps(dataclasses.asdict(report)))


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.name for sample in SAMPLES])
def test_sample_parses_to_its_expected_report(sample: Path) -> None:
    assert _as_json(parse_bounce(sample.read_bytes())) == _expected(sample)


def test_corpus_has_at_least_30_samples_each_with_expected_json() -> None:
    assert len(SAMPLES) >= 30
    assert [s.name for s in SAMPLES if not s.with_suffix(".json").is_file()] == []
    orphans = [j.name for j in CORPUS.glob("*.json") if not j.with_suffix(".eml").is_file()]
    assert orphans == []


def test_expected_reports_name_every_field() -> None:
    for sample in SAMPLES:
        expected = _expected(sample)
        if expected is None:
            continue
        assert set(expected) == REPORT_FIELDS, sample.name
        for recipient in expected["recipients"]:
            assert set(recipient) == RECIPIENT_FIELDS, sample.name


def test_corpus_covers_every_format() -> None:
    formats = {(_expected(s) or {}).get("format") for s in SAMPLES}
    wanted = {"rfc3464", "exchange", "gmail", "yahoo", "postfix", "exim", "qmail", "ses", "text"}
    assert wanted <= formats


AUTO_REPLIES = [s for s in SAMPLES if s.name.startswith("auto_reply_")]
BOUNCES = [s for s in SAMPLES if _expected(s) is not None]


@pytest.mark.parametrize("sample", AUTO_REPLIES, ids=[s.name for s in AUTO_REPLIES])
def test_auto_reply_samples_are_auto_replies(sample: Path) -> None:
    assert is_auto_reply(sample.read_bytes()) is True


@pytest.mark.parametrize("sample", BOUNCES, ids=[s.name for s in BOUNCES])
def test_bounce_samples_are_never_auto_replies(sample: Path) -> None:
    # Exim and Gmail bounces carry "Auto-Submitted: auto-replied"; they are still bounces.
    assert is_auto_reply(sample.read_bytes()) is False


def test_mailbox_full_with_a_5xx_code_is_soft() -> None:
    # The reason decides, not the status class: a full mailbox works again once emptied.
    report = parse_bounce((CORPUS / "exim_hard.eml").read_bytes())
    assert report is not None
    full = [r for r in report.recipients if r.status == "5.2.2"]
    assert [(r.recipient, r.bounce_type, r.reason) for r in full] == [
        ("carl@example.org", "soft", "mailbox_full")
    ]
