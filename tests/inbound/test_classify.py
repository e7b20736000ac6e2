"""What the poller makes of each mail: the corpus classified, VERP read, nothing raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy_models.verp import VerpTag
from mailproxy_workers.inbound.classify import classify

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = sorted((DATA / "bounces").glob("*.eml")) + sorted((DATA / "pec").glob("*.eml"))


def _expected_kind(path: Path) -> set[str]:
    expected = json.loads(path.with_suffix(".json").read_text())
    if path.parent.name == "pec":
        return {"pec_receipt"} if expected is not None else {"bounce", "not_recognised"}
    if expected is not None:
        return {"bounce"}
    if path.name.startswith("auto_reply"):
        return {"auto_reply"}
    return {"not_recognised", "pec_receipt"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_sample_is_classified_as_its_parser_says(path):
    facts = classify(path.read_bytes())
    assert facts.kind in _expected_kind(path)
    if facts.kind == "pec_receipt":
        assert len(facts.events) == 1 and facts.events[0].kind.startswith("pec_")
    for event in facts.events:
        if event.kind == "bounce":
            assert event.details["bounce_type"] in ("hard", "soft")
            assert event.hard_bounce == (event.details["bounce_type"] == "hard")


def test_the_verp_address_a_bounce_was_delivered_to_names_the_message():
    raw = (DATA / "bounces" / "qmail_hard.eml").read_bytes()
    delivered = b"Delivered-To: bounces+m4242-K7F3Q2XA@example.com\r\n" + raw
    assert classify(delivered).correlation.verp_tags == (VerpTag(4242, "k7f3q2xa"),)
    untokened = b"Delivered-To: bounces+m4242@example.com\r\n" + raw
    assert classify(untokened).correlation.verp_tags == (VerpTag(4242, None),)
    assert classify(raw).correlation.verp_tags == ()


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(raw):
    facts = classify(raw)
    assert facts.kind in ("bounce", "pec_receipt", "auto_reply", "not_recognised", "unparseable")
