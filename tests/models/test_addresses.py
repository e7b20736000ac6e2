"""Mailbox parsing: the quick reading of the usual forms agrees with the full RFC 5322
parser, and stored mailboxes read the same in either stored form."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailproxy_models.addresses import _parse_one, parse_mailbox, stored_mailbox
from mailproxy_models.errors import InvalidInput

_ATOMS = st.lists(st.from_regex(r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}\Z"), min_size=1, max_size=4)
_QUOTED = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters='"\\'),
    max_size=20,
)
_ADDRESS = st.from_regex(r"\A[a-z0-9]{1,8}(\.[a-z0-9]{1,8})?@[a-z0-9]{1,8}\.(org|com)\Z")


@given(
    name=st.one_of(
        _ATOMS.map(lambda atoms: " ".join(atoms)),
        _ATOMS.map(lambda atoms: "  ".join(atoms)),
        _QUOTED.map(lambda text: f'"{text}"'),
    ),
    address=_ADDRESS,
    gap=st.sampled_from(["", " ", "  "]),
)
@settings(max_examples=300, deadline=None)
def test_the_quick_reading_agrees_with_the_parser(name, address, gap):
    text = f"{name}{gap}<{address}>"
    parsed_name, parsed_address, problem = _parse_one(text)
    if problem:  # the parser refuses it (an encoded word in quotes): so must the quick path
        try:
            parse_mailbox(text)
        except InvalidInput:
            return
        raise AssertionError(f"{text!r} accepted, the parser says {problem}")
    assert parse_mailbox(text) == {"name": parsed_name, "address": parsed_address}


def test_stored_forms_read_the_same():
    assert stored_mailbox({"name": "Smith, John", "address": "j@example.org"}) == stored_mailbox(
        "Smith, John <j@example.org>"
    )
    assert stored_mailbox("j@example.org") == {"name": "", "address": "j@example.org"}
    assert stored_mailbox('"Q" <q@example.org>') == {"name": "Q", "address": "q@example.org"}
