"""Suspend and activate a tenant or one batch, through the API and the CLI, with a real worker."""

from __future__ import annotations

import time

from tests.support.stack import make_messages, wait_until


def _delivered_ids(sink) -> set[str]:
    return {r.message()["X-Mailproxy-ID"] for r in sink.messages}


def test_suspended_batch_waits_and_is_delivered_once_activated(pg_stack, smtp_sink):
    key = pg_stack.setup_tenant(smtp_sink.port)
    answer = pg_stack.call("POST", "/commands/suspend", token=key, json={"batch_code": "held"})
    assert answer.json == {"ok": True, "active": True, "suspended_batches": ["held"]}
    pg_stack.start_worker("w1", beat=True)
    held = make_messages(3, prefix="HELD", batch_code="held")
    free = make_messages(3, prefix="FREE", batch_code="free")
    pg_stack.call("POST", "/commands/add-messages", token=key, json={"messages": held + free})
    wait_until(lambda: _delivered_ids(smtp_sink) >= {m["id"] for m in free}, timeout=30)
    time.sleep(2)  # several sweeps: the held batch stays held
    assert not _delivered_ids(smtp_sink) & {m["id"] for m in held}
    assert {m["status"] for m in pg_stack.all_messages(batch_code="held")} == {"pending"}

    answer = pg_stack.call("POST", "/commands/activate", token=key, json={"batch_code": "held"})
    assert answer.json["suspended_batches"] == []
    wait_until(lambda: len(smtp_sink.messages) == 6, timeout=30)
    assert _delivered_ids(smtp_sink) == {m["id"] for m in held + free}


def test_suspended_tenant_holds_everything_and_status_says_so(pg_stack, smtp_sink):
    key = pg_stack.setup_tenant(smtp_sink.port)
    pg_stack.call("POST", "/commands/suspend", token=key, json={})
    assert pg_stack.call("GET", "/status", token=key).json["active"] is False
    pg_stack.start_worker("w1", beat=True)
    pg_stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(2)})
    time.sleep(2)
    assert smtp_sink.messages == []
    pg_stack.call("POST", "/commands/activate", token=key, json={})
    smtp_sink.wait_for(2, timeout=30)
    actions = [e["action"] for e in pg_stack.call("GET", "/audit-log").json["entries"]]
    assert actions[:2] == ["tenant.activate", "tenant.suspend"]


def test_admin_must_name_the_tenant_and_a_tenant_only_its_own(pg_stack):
    key = pg_stack.setup_tenant(2525)
    assert pg_stack.call("POST", "/commands/suspend", json={}).status_code == 403
    other = pg_stack.call("POST", "/commands/suspend", token=key, json={"tenant_id": "other"})
    assert other.status_code == 404
