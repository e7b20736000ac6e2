"""What add-messages accepts, refuses and stores: one mailbox per address entry (parsed once,
stored as name and address), no control characters in header-bound values, usable ids and
Message-IDs, the seed system's priority names, unknown keys refused by name, attachments over
the size limit refused at the door."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailproxy_models.addresses import envelope_recipients
from mailproxy_models.messages import Message

SMUGGLER = '"evil@example.net, x" <legit@example.org>'


def _message(msg_id: str = "m1", **fields: Any) -> dict[str, Any]:
    return {
        "id": msg_id,
        "from": "a@example.com",
        "to": ["b@example.org"],
        "subject": "s",
        **fields,
    }


def _post(stack, key: str, *messages: dict[str, Any]) -> dict[str, Any]:
    answer = stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})
    assert answer.status_code == 200, answer.json
    return dict(answer.json)


def _refusal(stack, key: str, message: dict[str, Any]) -> str:
    answer = _post(stack, key, message)
    assert answer["queued"] == 0, answer
    [rejected] = answer["rejected"]
    assert rejected["id"] == message["id"]
    return str(rejected["reason"])


def _payload(stack, msg_id: str) -> dict[str, Any]:
    with Session(stack.app.extensions["mailproxy"].engine) as session:
        return dict(session.scalars(select(Message.payload).where(Message.id == msg_id)).one())


def test_a_quoted_display_name_holding_addresses_is_one_mailbox(stack, tenant_key):
    many = ", ".join(f"r{i}@example.net" for i in range(600))
    answer = _post(
        stack,
        tenant_key,
        _message("smuggle", to=[SMUGGLER]),
        _message("smith", to=['"Smith, John" <john@example.org>']),
        _message("many", to=[f'"{many}" <legit@example.org>']),
    )
    assert answer == {"ok": True, "queued": 3, "rejected": []}
    smuggle = _payload(stack, "smuggle")
    assert smuggle["to"] == [{"name": "evil@example.net, x", "address": "legit@example.org"}]
    assert envelope_recipients(smuggle) == ["legit@example.org"]
    smith = _payload(stack, "smith")
    assert smith["to"] == [{"name": "Smith, John", "address": "john@example.org"}]
    assert envelope_recipients(smith) == ["john@example.org"]
    assert envelope_recipients(_payload(stack, "many")) == ["legit@example.org"]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("a@example.org, b@example.org", "two addresses"),
        ('"x@example.net" <a@example.org> b@example.org', "an address after the mailbox"),
        ("friends: a@example.org, b@example.org;", "a group"),
        ("undisclosed-recipients:;", "an empty group"),
        ("not an address", "garbage"),
        ("John <a@example.org", "unclosed angle bracket"),
        ("", "empty"),
    ],
)
def test_a_list_entry_that_is_not_exactly_one_mailbox_is_refused_naming_it(
    stack, tenant_key, entry, why
):
    reason = _refusal(stack, tenant_key, _message(cc=["ok@example.org", entry]))
    assert reason.startswith("cc[1]:"), (why, reason)


def test_from_is_exactly_one_mailbox(stack, tenant_key):
    reason = _refusal(stack, tenant_key, _message(**{"from": "a@example.com, b@example.com"}))
    assert reason.startswith("from:")
    reason = _refusal(stack, tenant_key, _message(reply_to="r@example.com, s@example.com"))
    assert reason.startswith("reply_to:")
    assert _post(stack, tenant_key, _message("ok", **{"from": '"Shop, Inc." <s@example.com>'}))[
        "queued"
    ]
    assert _payload(stack, "ok")["from"] == {"name": "Shop, Inc.", "address": "s@example.com"}


def test_a_string_is_an_address_list_and_recipients_are_counted_after_parsing(stack, tenant_key):
    answer = _post(
        stack,
        tenant_key,
        _message("plain", to="b@example.org, C <c@example.org>"),
        _message("one", to='"Smith, John" <john@example.org>'),
        _message("too-many", to=", ".join(f"r{i}@example.org" for i in range(501))),
    )
    assert answer["queued"] == 2
    assert [r["id"] for r in answer["rejected"]] == ["too-many"]
    assert "at most 500 recipients" in answer["rejected"][0]["reason"]
    assert envelope_recipients(_payload(stack, "plain")) == ["b@example.org", "c@example.org"]
    assert _payload(stack, "one")["to"] == [{"name": "Smith, John", "address": "john@example.org"}]


def test_internationalised_names_and_addresses_are_accepted(stack, tenant_key):
    assert _post(stack, tenant_key, _message("idn", to=["Jöhn Dœ <jöhn@exämple.org>"]))["queued"]
    assert _payload(stack, "idn")["to"] == [{"name": "Jöhn Dœ", "address": "jöhn@exämple.org"}]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": "a\x0bb"}, "subject:"),
        ({"subject": "a\x0cb"}, "subject:"),
        ({"subject": "a\x1cb"}, "subject:"),
        ({"subject": "a\x7fb"}, "subject:"),
        ({"subject": "a\x85b"}, "subject:"),
        ({"headers": {"X-A": "v\x0bw"}}, "headers.X-A:"),
        ({"to": ["Bob\x0c <b@example.org>"]}, "to[0]:"),
        ({"from": "Shop\x1c <s@example.com>"}, "from:"),
        ({"batch_code": "b\x1fc"}, "batch_code:"),
        ({"attachments": [{"filename": "a\x0b.txt", "storage_path": "base64:aGk="}]}, "filename"),
    ],
)
def test_control_characters_in_header_values_are_refused_naming_the_field(
    stack, tenant_key, change, field
):
    reason = _refusal(stack, tenant_key, _message(**change))
    assert field in reason and "control character" in reason, reason


def test_tab_in_a_subject_is_kept(stack, tenant_key):
    assert _post(stack, tenant_key, _message("tab", subject="a\tb"))["queued"] == 1


@pytest.mark.parametrize("msg_id", ["a/b", ".", "..", "x\x0by"])
def test_message_ids_that_cannot_be_read_back_are_refused(stack, tenant_key, msg_id):
    assert _refusal(stack, tenant_key, _message(msg_id)).startswith("id:")


def test_a_stored_id_is_readable_at_its_url(stack, tenant_key):
    assert _post(stack, tenant_key, _message("order:1 #2 ü"))["queued"] == 1
    answer = stack.call("GET", "/message/order:1%20%232%20%C3%BC", token=tenant_key)
    assert answer.status_code == 200 and answer.json["message"]["id"] == "order:1 #2 ü"


@pytest.mark.parametrize("value", ["not-a-msgid", "<a b@example.org>", "<@example.org>", "<a@>"])
def test_message_id_must_be_a_msg_id(stack, tenant_key, value):
    assert _refusal(stack, tenant_key, _message(message_id=value)).startswith("message_id:")


def test_message_id_without_angle_brackets_gets_them(stack, tenant_key):
    answer = _post(
        stack,
        tenant_key,
        _message("bare", message_id="abc.1@example.org"),
        _message("full", message_id="<abc.2@example.org>"),
    )
    assert answer["queued"] == 2
    assert _payload(stack, "bare")["message_id"] == "<abc.1@example.org>"
    assert _payload(stack, "full")["message_id"] == "<abc.2@example.org>"


def test_priority_names_of_the_seed_system_are_stored_as_numbers(stack, tenant_key):
    names = {"immediate": 0, "high": 1, "medium": 2, "low": 3}
    answer = _post(stack, tenant_key, *[_message(name, priority=name) for name in names])
    assert answer["queued"] == 4
    for name, number in names.items():
        assert _payload(stack, name)["priority"] == number
    assert _refusal(stack, tenant_key, _message("bad", priority="urgent")).startswith("priority:")


def test_default_priority_takes_a_name_too(stack, tenant_key):
    answer = stack.call(
        "POST",
        "/commands/add-messages",
        token=tenant_key,
        json={"messages": [_message("d")], "default_priority": "low"},
    )
    assert answer.status_code == 200 and answer.json["queued"] == 1, answer.json
    assert _payload(stack, "d")["priority"] == 3


def test_unknown_keys_are_refused_by_name_with_the_field_to_use(stack, tenant_key):
    reason = _refusal(stack, tenant_key, _message(account="main", is_pec=True))
    assert "'account'" in reason and "'is_pec'" in reason
    assert "use 'account_id'" in reason and "POST /account" in reason
    reason = _refusal(
        stack,
        tenant_key,
        _message(attachments=[{"filename": "a.txt", "storage_path": "base64:aGk=", "size": 2}]),
    )
    assert reason.startswith("attachments[0]:") and "'size'" in reason


def test_a_base64_attachment_over_the_limit_is_refused_at_the_door(stack, tenant_key):
    limit = stack.settings.attachment_max_bytes
    assert limit == 30 * 1024 * 1024
    over = base64.b64encode(b"\0" * (31 * 1024 * 1024)).decode()
    at_limit = base64.b64encode(b"\0" * limit).decode()
    reason = _refusal(
        stack,
        tenant_key,
        _message("big", attachments=[{"filename": "a.bin", "storage_path": "base64:" + over}]),
    )
    assert reason.startswith("attachments[0].storage_path:")
    assert str(limit) in reason and "30 MiB" in reason
    answer = _post(
        stack,
        tenant_key,
        _message("fits", attachments=[{"filename": "a.bin", "storage_path": "base64:" + at_limit}]),
    )
    assert answer["queued"] == 1


@pytest.mark.parametrize("value", [10**400, -1, 253402300800, "soon"])
def test_deferred_ts_out_of_range_is_refused_naming_the_field(stack, tenant_key, value):
    assert _refusal(stack, tenant_key, _message(deferred_ts=value)).startswith("deferred_ts:")
