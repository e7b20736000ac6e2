"""Tenants, keys and accounts through the API: roles, isolation, secrets never shown."""

from __future__ import annotations

import time

from tests.support.stack import make_messages


def test_tenant_key_is_shown_once_and_stored_only_as_a_hash(stack):
    answer = stack.call("POST", "/tenant", json={"id": "acme"})
    key = answer.json["api_key"]
    assert key.startswith("mpk_")
    assert "api_key" not in stack.call("GET", "/tenant/acme").json
    with stack.app.extensions["mailproxy"].engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash FROM api_keys").scalars().all()
    assert key not in stored and len(stored) == 1


def test_creating_an_existing_tenant_is_a_409(stack):
    stack.call("POST", "/tenant", json={"id": "acme"})
    answer = stack.call("POST", "/tenant", json={"id": "acme"})
    assert answer.status_code == 409 and "already exists" in answer.json["error"]


def test_tenant_fields_are_validated_with_per_field_errors(stack):
    answer = stack.call("POST", "/tenant", json={"id": "bad id!", "client_base_url": "nope"})
    assert answer.status_code == 422
    assert {"id", "client_base_url"} <= set(answer.json["errors"])


def test_client_auth_secrets_are_never_returned(stack):
    body = {
        "id": "acme",
        "client_base_url": "http://127.0.0.1:9/app",
        "client_auth": {"method": "basic", "user": "u", "password": "hunter2-secret"},
    }
    created = stack.call("POST", "/tenant", json=body)
    assert "hunter2-secret" not in created.get_data(as_text=True)
    shown = stack.call("GET", "/tenant/acme").json["tenant"]["client_auth"]
    assert shown == {"method": "basic", "user": "u", "password": "***"}
    # Sending the mask back keeps the stored secret.
    stack.call("PUT", "/tenant/acme", json={"client_auth": shown})
    with stack.app.extensions["mailproxy"].engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT client_auth FROM tenants").scalar_one()
    assert "hunter2-secret" not in str(stored) and "password_enc" in str(stored)


def test_account_password_is_encrypted_at_rest_and_never_returned(stack):
    key = stack.setup_tenant(2525, account={"user": "u", "password": "smtp-pass-123"})
    answer = stack.call("GET", "/account/main", token=key)
    assert answer.json["account"]["has_password"] is True
    assert "smtp-pass-123" not in answer.get_data(as_text=True)
    with stack.app.extensions["mailproxy"].engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_enc FROM accounts").scalar_one()
    assert stored.startswith("v1:") and "smtp-pass-123" not in stored


def test_tenant_token_cannot_use_admin_endpoints(stack):
    key = stack.setup_tenant(2525)
    assert stack.call("GET", "/tenants", token=key).status_code == 403
    assert stack.call("POST", "/tenant", token=key, json={"id": "other"}).status_code == 403
    assert stack.call("DELETE", "/tenant/acme", token=key).status_code == 403


def test_tenant_sees_nothing_of_another_tenant(stack):
    key_a = stack.setup_tenant(2525, tenant_id="alpha")
    key_b = stack.setup_tenant(2526, tenant_id="beta")
    stack.call("POST", "/commands/add-messages", token=key_a, json={"messages": make_messages(2)})
    assert stack.all_messages(token=key_b) == []
    assert stack.call("GET", "/message/MSG-00000", token=key_b).status_code == 404
    listing = stack.call("GET", "/messages", token=key_b, query_string={"tenant_id": "alpha"})
    assert listing.status_code == 404
    assert stack.call("GET", "/tenant/alpha", token=key_b).status_code == 404
    assert stack.call("GET", "/account/main", token=key_b).json["account"]["port"] == 2526
    deleted = stack.call(
        "POST", "/commands/delete-messages", token=key_b, json={"ids": ["MSG-00000"]}
    )
    assert deleted.json == {"ok": True, "removed": 0, "not_found": ["MSG-00000"]}
    assert len(stack.all_messages(token=key_a)) == 2


def test_revoked_key_no_longer_authenticates(stack):
    key = stack.setup_tenant(2525)
    second = stack.call("POST", "/tenant/acme/api-key", json={"name": "rotation"}).json["api_key"]
    assert stack.call("GET", "/messages", token=second).status_code == 200
    assert stack.call("DELETE", "/tenant/acme/api-key").json == {"ok": True, "revoked": 2}
    assert stack.call("GET", "/messages", token=key).status_code == 401
    assert stack.call("GET", "/messages", token=second).status_code == 401


def test_expired_key_no_longer_authenticates(stack):
    stack.call("POST", "/tenant", json={"id": "acme"})
    soon = int(time.time()) + 1
    expired = stack.call("POST", "/tenant/acme/api-key", json={"expires_at": soon}).json["api_key"]
    time.sleep(max(0.0, soon - time.time()) + 0.2)
    answer = stack.call("GET", "/messages", token=expired)
    assert answer.status_code == 401 and "expired" in answer.json["error"]


def test_account_with_waiting_messages_cannot_be_deleted(stack):
    key = stack.setup_tenant(2525)
    stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(1)})
    answer = stack.call("DELETE", "/account/main", token=key)
    assert answer.status_code == 409 and "waiting" in answer.json["error"]
    stack.call("POST", "/commands/delete-messages", token=key, json={"ids": ["MSG-00000"]})
    assert stack.call("DELETE", "/account/main", token=key).status_code == 200


def test_deleting_a_tenant_removes_its_accounts_and_messages(stack):
    key = stack.setup_tenant(2525)
    stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(3)})
    assert stack.call("DELETE", "/tenant/acme").status_code == 200
    assert stack.all_messages() == []
    assert stack.call("GET", "/accounts").json["accounts"] == []


def test_message_without_account_uses_the_one_marked_default(stack):
    key = stack.setup_tenant(2525)
    stack.call(
        "POST",
        "/account",
        token=key,
        json={"id": "second", "host": "127.0.0.1", "port": 2526, "is_default": True},
    )
    answer = stack.call(
        "POST", "/commands/add-messages", token=key, json={"messages": make_messages(1)}
    )
    assert answer.json["queued"] == 1
    assert stack.all_messages()[0]["account_id"] == "second"


def test_pagination_walks_every_message_once(stack):
    key = stack.setup_tenant(2525)
    stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(25)})
    seen, cursor = [], None
    while True:
        query = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = stack.call("GET", "/messages", token=key, query_string=query).json
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"MSG-{i:05d}" for i in range(25)]
    bad = stack.call("GET", "/messages", token=key, query_string={"cursor": "garbage"})
    assert bad.status_code == 400 and "cursor" in bad.json["error"]


def test_a_tenant_may_set_its_own_retry_schedule(stack):
    key = stack.setup_tenant(2525)
    answer = stack.call("PUT", "/tenant/acme", token=key, json={"retry_schedule": [30, 120]})
    assert answer.json["tenant"]["retry_schedule"] == [30, 120]
    bad = stack.call("PUT", "/tenant/acme", token=key, json={"retry_schedule": [0]})
    assert bad.status_code == 422 and "retry_schedule" in bad.json["errors"]
    account = stack.call("GET", "/account/main", token=key).json["account"]
    assert account["failing_since"] is None and account["failing_reason"] is None
