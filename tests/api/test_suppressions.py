"""The suppression list over the API: add, list by pages, remove, refuse, isolate tenants."""

from __future__ import annotations

from tests.support.stack import make_messages


def test_listed_addresses_are_refused_until_removed(stack, tenant_key):
    added = stack.call(
        "POST",
        "/suppressions",
        token=tenant_key,
        json={"addresses": ["Dead@Example.org", "gone@example.net"], "reason": "left the company"},
    )
    assert added.status_code == 200 and added.json["added"] == 2
    again = stack.call(
        "POST", "/suppressions", token=tenant_key, json={"addresses": ["dead@example.org"]}
    )
    assert again.json == {"ok": True, "added": 0, "already_listed": ["dead@example.org"]}

    batch = make_messages(2, to=["ok@example.org"], cc=[]) + make_messages(
        1, prefix="BCC", to=["ok@example.org"], cc=[], bcc=["Someone <DEAD@example.org>"]
    )
    answer = stack.call(
        "POST", "/commands/add-messages", token=tenant_key, json={"messages": batch}
    )
    assert answer.json["queued"] == 2
    (refused,) = answer.json["rejected"]
    assert refused["id"] == "BCC-00000"
    assert "dead@example.org is on the tenant's suppression list" in refused["reason"]
    assert "left the company" in refused["reason"] and "DELETE /suppression/" in refused["reason"]

    assert (
        stack.call("DELETE", "/suppression/DEAD@example.org", token=tenant_key).status_code == 200
    )
    gone = stack.call("DELETE", "/suppression/dead@example.org", token=tenant_key)
    assert gone.status_code == 404 and "not on the suppression list" in gone.json["error"]
    answer = stack.call(
        "POST", "/commands/add-messages", token=tenant_key, json={"messages": batch}
    )
    assert answer.json["rejected"] == [
        {"id": "MSG-00000", "reason": "duplicate id"},
        {"id": "MSG-00001", "reason": "duplicate id"},
    ]


def test_pages_in_address_order(stack, tenant_key):
    addresses = [f"user{i:02d}@example.org" for i in range(25)]
    stack.call("POST", "/suppressions", token=tenant_key, json={"addresses": addresses})
    seen, after = [], None
    while True:
        query = {"limit": 10, **({"after": after} if after else {})}
        page = stack.call("GET", "/suppressions", token=tenant_key, query_string=query).json
        assert page["total"] == 25
        seen += [entry["address"] for entry in page["suppressions"]]
        assert all(entry["source"] == "manual" for entry in page["suppressions"])
        after = page["next_after"]
        if after is None:
            break
    assert seen == addresses


def test_a_tenant_never_sees_or_changes_anothers_list(stack, tenant_key):
    other_key = stack.setup_tenant(2525, tenant_id="other")
    stack.call("POST", "/suppressions", token=tenant_key, json={"addresses": ["x@example.org"]})
    assert stack.call("GET", "/suppressions", token=other_key).json["suppressions"] == []
    peek = stack.call("GET", "/suppressions", token=other_key, query_string={"tenant_id": "acme"})
    assert peek.status_code in (403, 404)
    assert stack.call("DELETE", "/suppression/x@example.org", token=other_key).status_code == 404
    # The admin names the tenant.
    admin = stack.call("GET", "/suppressions", query_string={"tenant_id": "acme"}).json
    assert [entry["address"] for entry in admin["suppressions"]] == ["x@example.org"]
    assert stack.call("GET", "/suppressions").status_code == 403


def test_bad_input_is_a_clear_error(stack, tenant_key):
    for body in ({}, {"addresses": []}, {"addresses": ["not an address"]}, {"addresses": "a@b.c"}):
        answer = stack.call("POST", "/suppressions", token=tenant_key, json=body)
        assert answer.status_code == 422, body
        assert answer.json["ok"] is False and answer.json["error"]
    too_many = {"addresses": [f"u{i}@example.org" for i in range(1001)]}
    assert stack.call("POST", "/suppressions", token=tenant_key, json=too_many).status_code == 422
    assert (
        stack.call("GET", "/suppressions", token=tenant_key, query_string={"limit": 0}).status_code
        == 422
    )
