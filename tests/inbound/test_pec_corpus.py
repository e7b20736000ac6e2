"""Every sample in tests/data/pec/ parses to exactly the receipt its .json describes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mailproxy_workers.inbound.pec import (
    EVENT_KIND_BY_RECEIPT_TYPE,
    PecReceipt,
    parse_pec_receipt,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "pec"
SAMPLES = sorted(CORPUS.glob("*.eml"))


def as_json(receipt: PecReceipt | None) -> Any:
    """The receipt as the corpus stores it: a dict with lists for tuples, or None."""
    if receipt is None:
        return None
    return json.loads(json.dumps(dataclasses.asdict(receipt)))


@pytest.mark.parametrize("eml", SAMPLES, ids=[path.name for path in SAMPLES])
def test_sample_parses_to_its_expected_json(eml: Path) -> None:
    expected = json.loads(eml.with_suffix(".json").read_text(encoding="utf-8"))

    assert as_json(parse_pec_receipt(eml.read_bytes())) == expected


def test_corpus_has_at_least_14_samples_each_with_expected_json() -> None:
    assert len(SAMPLES) >= 14
    assert [eml.name for eml in SAMPLES if not eml.with_suffix(".json").is_file()] == []


RECEIPT_HEADERS_ONLY = (
    "From: posta-certificata@pec.example.net\r\n"
    "To: shop@pec.example.com\r\n"
    "Subject: ricevuta\r\n"
    "X-Ricevuta: {receipt_type}\r\n"
    "X-Riferimento-Message-ID: <m1@mailproxy.example.com>\r\n"
    "\r\n"
    "testo\r\n"
)


@pytest.mark.parametrize(
    ("receipt_type", "event_kind"),
    [
        ("accettazione", "pec_acceptance"),
        ("presa-in-carico", "pec_acceptance"),
        ("avvenuta-consegna", "pec_delivery"),
        ("non-accettazione", "pec_error"),
        ("errore-consegna", "pec_error"),
        ("preavviso-errore-consegna", "pec_error"),
        ("rilevazione-virus", "pec_error"),
    ],
)
def test_each_receipt_type_maps_to_its_event_kind(receipt_type: str, event_kind: str) -> None:
    raw = RECEIPT_HEADERS_ONLY.format(receipt_type=receipt_type).encode()

    receipt = parse_pec_receipt(raw)

    assert receipt is not None
    assert (receipt.receipt_type, receipt.event_kind) == (receipt_type, event_kind)
    assert receipt.original_message_id == "<m1@mailproxy.example.com>"
    assert EVENT_KIND_BY_RECEIPT_TYPE[receipt_type] == event_kind


def test_only_the_seven_receipt_types_are_known() -> None:
    assert len(EVENT_KIND_BY_RECEIPT_TYPE) == 7


def test_unknown_x_ricevuta_without_daticert_is_not_a_receipt() -> None:
    raw = RECEIPT_HEADERS_ONLY.format(receipt_type="posta-certificata").encode()

    assert parse_pec_receipt(raw) is None
