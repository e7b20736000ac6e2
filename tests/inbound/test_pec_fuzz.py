"""parse_pec_receipt never raises and always returns a well-typed result, whatever the bytes."""

from __future__ import annotations

import base64
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy_workers.inbound.pec import (
    EVENT_KIND_BY_RECEIPT_TYPE,
    PecReceipt,
    parse_pec_receipt,
)

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True)

CORPUS = sorted((Path(__file__).resolve().parents[1] / "data" / "pec").glob("*.eml"))
CORPUS_BYTES = [path.read_bytes() for path in CORPUS]

RECEIPT_TYPES = sorted(EVENT_KIND_BY_RECEIPT_TYPE)
OPTIONAL_STRINGS = (
    "original_message_id",
    "error",
    "error_detail",
    "provider",
    "identifier",
    "subject",
    "sender",
)


def assert_well_typed(result: PecReceipt | None) -> None:
    if result is None:
        return
    assert isinstance(result, PecReceipt)
    assert EVENT_KIND_BY_RECEIPT_TYPE[result.receipt_type] == result.event_kind
    for name in OPTIONAL_STRINGS:
        assert isinstance(getattr(result, name), str | None), name
    assert result.ts is None or isinstance(result.ts, float)
    assert isinstance(result.recipients, tuple)
    assert all(isinstance(r, str) and r == r.lower() and r for r in result.recipients)
    assert isinstance(result.correlation_ids, tuple)
    assert all(isinstance(c, str) for c in result.correlation_ids)
    assert len(set(result.correlation_ids)) == len(result.correlation_ids)


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    assert_well_typed(parse_pec_receipt(raw))


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS_BYTES)))
    flips = draw(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=8))
    for where, value in flips:
        data[where % len(data)] = value
    keep = draw(st.integers(1, len(data)))
    return bytes(data[:keep])


@FUZZ
@given(mutated_samples())
def test_mutated_corpus_samples_never_raise(raw: bytes) -> None:
    assert_well_typed(parse_pec_receipt(raw))


XML_TEXT = st.text(st.characters(codec="utf-8"), max_size=24)
ATTRIBUTE_VALUES = st.one_of(
    st.sampled_from([*RECEIPT_TYPES, "posta-certificata", "nessuno", "no-dest", "virus"]),
    XML_TEXT,
)
ELEMENTS = [
    "mittente",
    "destinatari",
    "risposte",
    "oggetto",
    "gestore-emittente",
    "identificativo",
    "msgid",
    "consegna",
    "ricezione",
    "errore-esteso",
]


@st.composite
def daticert_documents(draw: st.DrawFn) -> tuple[bytes, str]:
    """A daticert.xml with random elements, attributes and text; returns it and its tipo."""
    tipo = draw(ATTRIBUTE_VALUES)
    errore = draw(ATTRIBUTE_VALUES)
    body = []
    for name in draw(st.lists(st.sampled_from(ELEMENTS), max_size=8)):
        body.append(f"<{name}>{escape(draw(XML_TEXT))}</{name}>")
    if draw(st.booleans()):
        zona, giorno, ora = draw(ATTRIBUTE_VALUES), draw(XML_TEXT), draw(XML_TEXT)
        body.append(
            f"<data zona={quoteattr(zona)}><giorno>{escape(giorno)}</giorno>"
            f"<ora>{escape(ora)}</ora></data>"
        )
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<postacert tipo={quoteattr(tipo)} errore={quoteattr(errore)}>"
        f"<intestazione/><dati>{''.join(body)}</dati></postacert>"
    )
    if draw(st.booleans()):  # sometimes raw, unescaped text: malformed XML
        xml = xml.replace("<dati>", f"<dati>{draw(XML_TEXT)}")
    return xml.encode("utf-8"), tipo


def wrap_in_receipt(daticert: bytes, header_type: str) -> bytes:
    encoded = base64.encodebytes(daticert).decode()
    return (
        "From: posta-certificata@pec.example.net\n"
        f"X-Ricevuta: {header_type}\n"
        "X-Riferimento-Message-ID: <m1@mailproxy.example.com>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nricevuta\n"
        '--b\nContent-Type: application/xml; name="daticert.xml"\n'
        "Content-Transfer-Encoding: base64\n\n"
        f"{encoded}--b--\n"
    ).encode()


@FUZZ
@given(daticert_documents(), st.sampled_from(RECEIPT_TYPES))
def test_random_daticert_documents_never_raise(
    document: tuple[bytes, str], header_type: str
) -> None:
    daticert, tipo = document

    result = parse_pec_receipt(wrap_in_receipt(daticert, header_type))

    assert_well_typed(result)
    # A known X-Ricevuta type always yields a receipt, daticert or not.
    assert result is not None
    assert result.receipt_type in (header_type, tipo)
