"""POST /commands/add-messages: what is queued, what is refused, and why."""

from __future__ import annotations

import pytest

from tests.support.stack import make_messages


def _post(stack, key, body, **kwargs):
    return stack.call("POST", "/commands/add-messages", token=key, json=body, **kwargs)


def _stored_ids(stack) -> list[str]:
    return [m["id"] for m in stack.all_messages()]


def test_valid_messages_are_queued_pending_with_defaults(stack, tenant_key):
    answer = _post(stack, tenant_key, {"messages": make_messages(3)})
    assert answer.status_code == 200
    assert answer.json == {"ok": True, "queued": 3, "rejected": []}
    records = stack.all_messages()
    assert [r["status"] for r in records] == ["pending"] * 3
    assert {r["priority"] for r in records} == {2}
    assert {r["account_id"] for r in records} == {"main"}
    assert all(r["created_at"] and r["sent_ts"] is None for r in records)


def test_comma_separated_to_and_default_priority_are_accepted(stack, tenant_key):
    message = {
        "id": "x",
        "from": "a@example.com",
        "to": "b@example.org, C <c@example.org>",
        "subject": "s",
    }
    answer = _post(stack, tenant_key, {"messages": [message], "default_priority": 1})
    assert answer.json["queued"] == 1
    assert stack.all_messages()[0]["priority"] == 1


def test_reposting_an_existing_id_does_not_queue_it_twice(stack, tenant_key):
    _post(stack, tenant_key, {"messages": make_messages(2)})
    answer = _post(stack, tenant_key, {"messages": make_messages(3)})
    assert answer.json["queued"] == 1
    assert answer.json["rejected"] == [
        {"id": "MSG-00000", "reason": "duplicate id"},
        {"id": "MSG-00001", "reason": "duplicate id"},
    ]
    assert len(_stored_ids(stack)) == 3


def test_internationalized_addresses_are_accepted(stack, tenant_key):
    message = {
        "id": "intl",
        "from": "José <josé@example.com>",
        "to": ["用户@例子.广告"],
        "cc": ["Zoë <zoë@exämple.de>"],
        "subject": "Grüße",
    }
    answer = _post(stack, tenant_key, {"messages": [message]})
    assert answer.json == {"ok": True, "queued": 1, "rejected": []}


def test_same_id_twice_in_one_batch_is_stored_once(stack, tenant_key):
    batch = make_messages(1) + make_messages(1)
    answer = _post(stack, tenant_key, {"messages": batch})
    assert answer.json["queued"] == 1
    assert answer.json["rejected"] == [{"id": "MSG-00000", "reason": "duplicate id"}]


BAD_MESSAGES = [
    ("missing id", {"id": None}, "id:"),
    ("missing from", {"from": None}, "from:"),
    ("bad from address", {"from": "not-an-address"}, "from:"),
    ("empty to", {"to": []}, "to:"),
    ("bad to address", {"to": ["a@@example.org"]}, "to[0]:"),
    ("to of wrong type", {"to": 42}, "to:"),
    ("missing subject", {"subject": None}, "subject:"),
    ("CR/LF in subject", {"subject": "Hi\r\nBcc: victim@example.org"}, "header injection"),
    ("LF in custom header", {"headers": {"X-A": "v\nBcc: x@example.org"}}, "headers.X-A"),
    ("reserved header", {"headers": {"From": "evil@example.com"}}, "headers:"),
    ("too many headers", {"headers": {f"X-H{i}": "v" for i in range(51)}}, "at most 50"),
    ("header value too long", {"headers": {"X-Long": "v" * 999}}, "headers.X-Long"),
    ("bad header name", {"headers": {"Bad Name": "v"}}, "headers:"),
    ("priority of wrong type", {"priority": "urgent"}, "priority:"),
    ("priority out of range", {"priority": 7}, "priority:"),
    ("content_type unknown", {"content_type": "rtf"}, "content_type:"),
    ("unknown account", {"account_id": "nope"}, "account_id:"),
    (
        "bad base64 attachment",
        {"attachments": [{"filename": "a.pdf", "storage_path": "base64:%%"}]},
        "attachments[0].storage_path",
    ),
    (
        "attachment MD5 mismatch",
        {
            "attachments": [
                {"filename": "a.txt", "storage_path": "base64:aGk=", "content_md5": "0" * 32}
            ]
        },
        "MD5",
    ),
    (
        "attachment path in name",
        {"attachments": [{"filename": "../../etc/passwd", "storage_path": "base64:aGk="}]},
        "attachments[0].filename",
    ),
    ("deferred_ts not a number", {"deferred_ts": "tomorrow"}, "deferred_ts:"),
    ("too many recipients", {"to": [f"u{i}@example.org" for i in range(600)]}, "recipients:"),
]


@pytest.mark.parametrize(
    ("case", "change", "reason_part"), BAD_MESSAGES, ids=[c[0] for c in BAD_MESSAGES]
)
def test_invalid_message_is_rejected_with_a_reason_and_the_valid_ones_queued(
    stack, tenant_key, case, change, reason_part
):
    good = make_messages(2)
    bad = {**make_messages(1, prefix="BAD")[0], **change}
    answer = _post(stack, tenant_key, {"messages": [good[0], bad, good[1]]})
    assert answer.status_code == 200, answer.json
    assert answer.json["queued"] == 2
    (rejected,) = answer.json["rejected"]
    assert reason_part in rejected["reason"], rejected
    assert sorted(_stored_ids(stack)) == ["MSG-00000", "MSG-00001"]


def test_tenant_token_naming_another_tenant_gets_404_and_stores_nothing(stack, tenant_key):
    batch = make_messages(2)
    batch[1]["tenant_id"] = "someone-else"
    answer = _post(stack, tenant_key, {"messages": batch})
    assert answer.status_code == 404 and "someone-else" in answer.json["error"]
    assert _stored_ids(stack) == []


def test_body_without_messages_is_a_400_naming_the_field(stack, tenant_key):
    answer = _post(stack, tenant_key, {"msgs": []})
    assert answer.status_code == 400
    assert answer.json["ok"] is False and "messages" in answer.json["errors"]


def test_messages_not_a_list_is_a_400(stack, tenant_key):
    answer = _post(stack, tenant_key, {"messages": {"id": "x"}})
    assert answer.status_code == 400 and "messages" in answer.json["errors"]


def test_body_that_is_not_json_is_a_400_and_stores_nothing(stack, tenant_key):
    answer = stack.call(
        "POST",
        "/commands/add-messages",
        token=tenant_key,
        data="{not json",
        content_type="application/json",
    )
    assert answer.status_code == 400 and answer.json["ok"] is False
    assert "JSON" in answer.json["error"]
    assert _stored_ids(stack) == []


def test_body_sent_as_form_is_a_415(stack, tenant_key):
    answer = stack.call("POST", "/commands/add-messages", token=tenant_key, data={"messages": "x"})
    assert answer.status_code == 415 and "application/json" in answer.json["error"]


def test_wrong_token_is_a_401_and_stores_nothing(stack, tenant_key):
    answer = _post(stack, "wrong-token", {"messages": make_messages(1)})
    assert answer.status_code == 401 and answer.json["ok"] is False
    assert "token" in answer.json["error"].lower()
    assert _stored_ids(stack) == []


def test_missing_token_is_a_401(stack):
    answer = stack.client.post("/commands/add-messages", json={"messages": []})
    assert answer.status_code == 401 and "X-API-Token" in answer.json["error"]


def test_too_many_messages_in_one_call_is_a_413_and_stores_nothing(stack, tenant_key):
    limit = stack.settings.max_messages_per_call
    answer = _post(stack, tenant_key, {"messages": make_messages(limit + 1)})
    assert answer.status_code == 413 and str(limit) in answer.json["error"]
    assert _stored_ids(stack) == []


def test_body_over_the_size_limit_is_a_413(stack, tenant_key):
    stack.app.config["MAX_CONTENT_LENGTH"] = 10_000
    answer = _post(stack, tenant_key, {"messages": make_messages(1, body="x" * 20_000)})
    assert answer.status_code == 413 and answer.json["ok"] is False
    assert _stored_ids(stack) == []


def test_admin_must_name_the_tenant_of_each_message(stack, tenant_key):
    answer = stack.call("POST", "/commands/add-messages", json={"messages": make_messages(1)})
    assert answer.json["queued"] == 0
    assert "tenant_id" in answer.json["rejected"][0]["reason"]
    answer = stack.call(
        "POST", "/commands/add-messages", json={"messages": make_messages(1, tenant_id="acme")}
    )
    assert answer.json["queued"] == 1


def test_nul_character_anywhere_is_a_400(stack, tenant_key):
    batch = make_messages(1, body="a\x00b")
    answer = _post(stack, tenant_key, {"messages": batch})
    assert answer.status_code == 400 and "NUL" in answer.json["error"]
    answer = stack.call(
        "POST", "/account", token=tenant_key, json={"id": "x\x00", "host": "h", "port": 1}
    )
    assert answer.status_code == 400
    assert (
        stack.call(
            "GET", "/messages", token=tenant_key, query_string={"batch_code": "\x00"}
        ).status_code
        == 400
    )
    assert _stored_ids(stack) == []


def test_an_attachments_own_credentials_are_stored_encrypted(stack, tenant_key):
    attachment = {
        "filename": "a.pdf",
        "storage_path": "https://files.example.com/a.pdf",
        "auth": {"method": "basic", "user": "u", "password": "attachment-secret-9"},
    }
    answer = _post(stack, tenant_key, {"messages": make_messages(1, attachments=[attachment])})
    assert answer.json["queued"] == 1
    with stack.app.extensions["mailproxy"].engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT payload FROM messages").scalar_one()
    assert "attachment-secret-9" not in str(stored) and "password_enc" in str(stored)
    shown = stack.call("GET", "/message/MSG-00000", token=tenant_key).get_data(as_text=True)
    assert "attachment-secret-9" not in shown
