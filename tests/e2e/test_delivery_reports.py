"""Delivery reports pushed to a real client application on loopback, through real workers."""

from __future__ import annotations

import base64
import time
from collections import Counter

import pytest

from tests.support.client_app import ClientApp
from tests.support.stack import Stack, make_messages, wait_until

FAST = {
    "report_sync_interval": 0.5,
    "report_backoff": [1, 2],
    "report_heartbeat": 3.0,
    "sweep_interval": 0.5,
}


@pytest.fixture
def report_stack(tmp_path, postgres_url, redis_url):
    stack = Stack(tmp_path, postgres_url, redis_url, **FAST)
    yield stack
    stack.stop()


def _tenant(stack: Stack, smtp_port: int, client: ClientApp, tenant_id: str = "acme", **auth):
    key = stack.setup_tenant(smtp_port, tenant_id=tenant_id)
    body = {"client_base_url": client.url, "client_sync_path": "/proxy_sync"}
    if auth:
        body["client_auth"] = auth
    assert stack.call("PUT", f"/tenant/{tenant_id}", token=key, json=body).status_code == 200
    return key


def test_outcomes_reach_the_client_with_its_auth_and_are_marked_reported(
    report_stack, smtp_sink, client_app
):
    client_app.expected_auth = "Basic " + base64.b64encode(b"app:app-secret").decode()
    smtp_sink.rcpt_rules["gone@example.org"] = "550 5.1.1 No such user"
    key = _tenant(
        report_stack, smtp_sink.port, client_app, method="basic", user="app", password="app-secret"
    )
    report_stack.start_worker("w1", concurrency=2, beat=True)
    messages = make_messages(3, cc=[]) + make_messages(
        1, prefix="BAD", to=["gone@example.org"], cc=[]
    )
    report_stack.call("POST", "/commands/add-messages", token=key, json={"messages": messages})

    wait_until(lambda: len(client_app.received) >= 4, timeout=30)
    sent = client_app.entries_for("MSG-00000")
    assert len(sent) == 1 and sent[0]["sent_ts"] > 0
    (bad,) = client_app.entries_for("BAD-00000")
    assert bad["error_ts"] > 0 and "550" in bad["error"]
    records = wait_until(
        lambda: (r := report_stack.all_messages()) and all(m["reported_ts"] for m in r) and r, 10
    )
    assert {m["status"] for m in records} == {"sent", "error"}
    time.sleep(2)  # later syncs send nothing twice
    assert Counter(e["id"] for e in client_app.received) == Counter(m["id"] for m in messages)


def test_client_down_gets_everything_once_it_is_back_and_nothing_is_marked_before(
    report_stack, smtp_sink, client_app
):
    client_app.status = 503
    key = _tenant(report_stack, smtp_sink.port, client_app)
    report_stack.start_worker("w1", concurrency=2, beat=True)
    report_stack.call(
        "POST", "/commands/add-messages", token=key, json={"messages": make_messages(20)}
    )
    wait_until(lambda: len(client_app.calls) >= 3, timeout=30)  # it tried, and retried
    gaps = [b["at"] - a["at"] for a, b in zip(client_app.calls, client_app.calls[1:])]
    assert all(gap >= 0.9 for gap in gaps), gaps  # backoff, not a busy loop
    assert all(m["reported_ts"] is None for m in report_stack.all_messages())

    client_app.status = 200
    wait_until(lambda: len(client_app.received) >= 20, timeout=30)
    assert Counter(e["id"] for e in client_app.received) == Counter(
        f"MSG-{i:05d}" for i in range(20)
    )
    wait_until(lambda: all(m["reported_ts"] for m in report_stack.all_messages()), 10)


def test_entries_the_client_lists_as_error_are_sent_again(report_stack, smtp_sink, client_app):
    client_app.answer = {"ok": True, "error": ["MSG-00001"]}
    key = _tenant(report_stack, smtp_sink.port, client_app)
    report_stack.start_worker("w1", beat=True)
    report_stack.call(
        "POST", "/commands/add-messages", token=key, json={"messages": make_messages(2)}
    )
    wait_until(lambda: client_app.entries_for("MSG-00000"), timeout=30)
    wait_until(
        lambda: (
            sum(
                1
                for c in client_app.calls
                if any(e["id"] == "MSG-00001" for e in c["entries"] or [])
            )
            >= 2
        ),
        30,
    )
    client_app.answer = {"ok": True}
    wait_until(lambda: client_app.entries_for("MSG-00001"), timeout=30)
    assert len(client_app.entries_for("MSG-00000")) == 1


def test_do_not_disturb_holds_empty_calls_but_not_new_outcomes(report_stack, smtp_sink, client_app):
    client_app.answer = {"ok": True, "next_sync_after": int(time.time()) + 3600}
    key = _tenant(report_stack, smtp_sink.port, client_app)
    report_stack.start_worker("w1", beat=True)
    wait_until(lambda: client_app.calls, timeout=30)  # the first heartbeat call
    time.sleep(4)  # longer than the heartbeat: still no call, the client asked for quiet
    assert len(client_app.calls) == 1
    report_stack.call(
        "POST", "/commands/add-messages", token=key, json={"messages": make_messages(1)}
    )
    wait_until(lambda: client_app.entries_for("MSG-00000"), timeout=30)


def test_heartbeat_calls_a_client_with_nothing_to_report(report_stack, smtp_sink, client_app):
    _tenant(report_stack, smtp_sink.port, client_app)
    report_stack.start_worker("w1", beat=True)
    wait_until(lambda: len(client_app.calls) >= 2, timeout=30)
    assert (
        client_app.calls[0]["entries"] == []
        and client_app.calls[1]["at"] - client_app.calls[0]["at"] >= 2.5
    )


def test_one_tenants_backlog_does_not_delay_another_tenants_reports(
    tmp_path, postgres_url, redis_url, smtp_sink
):
    big, small = ClientApp(status=503).start(), ClientApp(status=503).start()
    # Small batches: the backlog takes 200 turns, as 100,000 entries would in batches of 500.
    stack = Stack(tmp_path, postgres_url, redis_url, report_batch_size=10, **FAST)
    try:
        big_key = _tenant(stack, smtp_sink.port, big, tenant_id="big")
        small_key = _tenant(stack, smtp_sink.port, small, tenant_id="small")
        stack.call(
            "POST",
            "/commands/add-messages",
            token=small_key,
            json={"messages": make_messages(1, prefix="SMALL")},
        )
        for offset in range(0, 2000, 1000):
            stack.call(
                "POST",
                "/commands/add-messages",
                token=big_key,
                json={"messages": make_messages(1000, prefix=f"B{offset}", cc=[])},
            )
        stack.start_worker("w1", concurrency=2, beat=True)
        stack.wait_all_status(2001, "sent", timeout=180)  # both clients down meanwhile

        big.status = small.status = 200  # both clients come back at once
        back = time.time()
        wait_until(lambda: small.entries_for("SMALL-00000"), timeout=60, interval=0.05)
        waited = time.time() - back
        backlog_left = 2000 - len(big.received)
        wait_until(lambda: len(big.received) >= 2000, timeout=180)
        drained = time.time() - back
        assert backlog_left > 0, "the small tenant waited for the whole backlog"
        # Its backoff step, then its turn: before the backlog is drained. How long either
        # takes depends on the machine's load, so no absolute bound: that the small tenant
        # got its report while the backlog still had entries left is what shows fairness.
        assert waited < drained, (waited, drained)
    finally:
        stack.stop()
        big.stop()
        small.stop()


def test_retention_purges_reported_messages_only(report_stack, smtp_sink, client_app):
    key = _tenant(report_stack, smtp_sink.port, client_app)
    report_stack.call("POST", "/tenant", json={"id": "quiet"})  # no sync URL: never reported
    report_stack.call(
        "POST",
        "/account",
        json={
            "tenant_id": "quiet",
            "id": "main",
            "host": "127.0.0.1",
            "port": smtp_sink.port,
            "use_tls": False,
        },
    )
    report_stack.call(
        "POST", "/commands/add-messages", token=key, json={"messages": make_messages(2)}
    )
    report_stack.call(
        "POST",
        "/commands/add-messages",
        json={"messages": make_messages(2, prefix="Q", tenant_id="quiet")},
    )
    report_stack.start_worker("w1", beat=True)
    wait_until(lambda: len(client_app.received) >= 2, timeout=30)
    wait_until(
        lambda: all(m["reported_ts"] for m in report_stack.all_messages(tenant_id="acme")), 10
    )
    answer = report_stack.call(
        "POST", "/commands/cleanup-messages", token=key, json={"older_than_seconds": 0}
    )
    assert answer.json == {"ok": True, "removed": 2}
    remaining = report_stack.all_messages()
    assert [m["id"] for m in remaining] == ["Q-00000", "Q-00001"]  # unreported: kept


def test_a_hundred_thousand_unreported_outcomes_do_not_delay_another_tenant(
    tmp_path, postgres_url, redis_url
):
    import sqlalchemy as sa

    big, small = ClientApp().start(), ClientApp(status=503).start()
    stack = Stack(tmp_path, postgres_url, redis_url, report_batch_size=500, **FAST)
    try:
        _tenant(stack, 2525, big, tenant_id="big")
        _tenant(stack, 2525, small, tenant_id="small")
        # The backlog as workers would have recorded it: 100,000 sent messages, one event
        # each, none reported yet; and one for the small tenant.
        with stack.app.extensions["mailproxy"].engine.begin() as conn:
            for tenant, count in (("big", 100_000), ("small", 1)):
                conn.execute(
                    sa.text(
                        "INSERT INTO messages (tenant_id, id, account_id, priority, status,"
                        " payload, created_at, due_at, attempts, sent_ts)"
                        " SELECT :t, :t || '-' || g, 'main', 2, 'sent', '{}', 0, 0, 1, 0"
                        " FROM generate_series(1, :n) AS g"
                    ),
                    {"t": tenant, "n": count},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO message_events (message_pk, ts, kind, smtp_code) "
                    "SELECT pk, extract(epoch FROM now()), 'sent', 250 FROM messages"
                )
            )
        stack.start_worker("w1", concurrency=2, pool="prefork", beat=True)
        wait_until(lambda: len(big.received) >= 5000, timeout=60)  # the backlog drains
        small.status = 200
        back = time.time()
        wait_until(lambda: small.entries_for("small-1"), timeout=30, interval=0.05)
        waited = time.time() - back
        assert len(big.received) < 100_000 and waited < 5, (len(big.received), waited)
    finally:
        stack.stop()
        big.stop()
        small.stop()
