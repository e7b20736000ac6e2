"""The audit log and API key management."""

from __future__ import annotations


def test_administrative_changes_are_audited_with_who_what_when(stack):
    key = stack.setup_tenant(2525, account={"password": "never-in-the-audit"})
    stack.call("PUT", "/tenant/acme", token=key, json={"name": "Acme Two"})
    stack.call("POST", "/tenant/acme/api-key", json={"name": "ci"})
    entries = stack.call("GET", "/audit-log").json["entries"]
    actions = [(e["actor"], e["action"], e["target_type"]) for e in reversed(entries)]
    assert actions == [
        ("admin", "tenant.create", "tenant"),
        ("tenant:acme", "account.upsert", "account"),
        ("tenant:acme", "tenant.update", "tenant"),
        ("admin", "api_key.issue", "api_key"),
    ]
    upsert = entries[2]
    assert upsert["details"]["secrets_changed"] == ["password"]
    assert "never-in-the-audit" not in stack.call("GET", "/audit-log").get_data(as_text=True)
    assert all(e["ts"] > 0 and e["tenant_id"] == "acme" for e in entries)


def test_tenant_reads_only_its_own_audit_entries(stack):
    key_a = stack.setup_tenant(2525, tenant_id="alpha")
    stack.setup_tenant(2526, tenant_id="beta")
    own = stack.call("GET", "/audit-log", token=key_a).json["entries"]
    assert own and {e["tenant_id"] for e in own} == {"alpha"}
    assert (
        stack.call("GET", "/audit-log", token=key_a, query_string={"tenant_id": "beta"}).status_code
        == 404
    )


def test_audit_entries_outlive_the_deleted_tenant(stack):
    stack.setup_tenant(2525)
    stack.call("DELETE", "/tenant/acme")
    actions = [e["action"] for e in stack.call("GET", "/audit-log").json["entries"]]
    assert actions[0] == "tenant.delete" and "tenant.create" in actions


def test_keys_are_listed_without_secrets_and_revoked_one_by_one(stack):
    first = stack.setup_tenant(2525)
    second = stack.call("POST", "/tenant/acme/api-key", json={"name": "rotation"}).json["api_key"]
    stack.call("GET", "/messages", token=second)
    listed = stack.call("GET", "/tenant/acme/api-keys")
    keys = listed.json["api_keys"]
    assert [k["name"] for k in keys] == ["initial", "rotation"]
    assert first not in listed.get_data(as_text=True) and second not in listed.get_data(
        as_text=True
    )
    assert keys[1]["prefix"] == second[:12] and keys[1]["last_used_at"]
    assert stack.call("DELETE", f"/tenant/acme/api-key/{keys[0]['key_id']}").json == {"ok": True}
    assert stack.call("GET", "/messages", token=first).status_code == 401
    assert stack.call("GET", "/messages", token=second).status_code == 200
    assert stack.call("DELETE", "/tenant/acme/api-key/999999").status_code == 404


def test_tls_verification_is_on_by_default_and_an_opt_out_shows(stack):
    key = stack.setup_tenant(2525)
    assert stack.call("GET", "/account/main", token=key).json["account"]["tls_verify"] is True
    stack.call("POST", "/account", token=key, json={"id": "main", "tls_verify": False})
    assert stack.call("GET", "/account/main", token=key).json["account"]["tls_verify"] is False
