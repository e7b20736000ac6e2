"""/metrics: delivery metrics of real deliveries read from the database, monotonic across
retention; the metrics token; HTTP metrics summed over gunicorn workers; the dashboard."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import free_port, wait_port
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import REPO, Stack, wait_until

DASHBOARD = REPO / "deploy" / "grafana" / "mailproxy-dashboard.json"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped[(name, tuple(sorted(labels.items())))]


def message(msg_id: str, to: str, **fields) -> dict:
    return {"id": msg_id, "from": "shop@example.com", "to": [to], "subject": msg_id, **fields}


class Delivered:
    """A stack whose worker (logging JSON) has delivered: acme 3 sent, 1 refused for good,
    1 deferred by a 451 (retry due 2 s later, no sweeper to take it); beta 1 sent."""

    def __init__(self, root: Path) -> None:
        self.sink = SMTPSink(
            rcpt_rules={
                "gone@example.test": "550 5.1.1 No such user",
                "later@example.test": "451 4.7.1 Greylisted, try later",
            }
        ).start()
        self.stack = Stack(root, f"sqlite:///{root / 'mailproxy.sqlite'}", None)
        self.acme = self.stack.setup_tenant(self.sink.port, "acme")
        # Reports are due to an application that is never called (no beat): they wait.
        answer = self.stack.call(
            "PUT", "/tenant/acme", json={"client_base_url": "http://127.0.0.1:9"}
        )
        assert answer.status_code == 200, answer.json
        self.beta = self.stack.setup_tenant(self.sink.port, "beta")
        # Only the worker logs JSON: an API in this process would reconfigure pytest's logging.
        self.stack.settings = self.stack.settings.model_copy(update={"log_format": "json"})
        self.worker = self.stack.start_worker("w1")
        acme_messages = [message(f"OK-{i}", f"user{i}@example.org") for i in range(3)]
        acme_messages += [
            message("GONE", "gone@example.test"),
            message("LATER", "later@example.test"),
        ]
        for key, batch in ((self.acme, acme_messages), (self.beta, [message("B-1", "b@x.org")])):
            answer = self.stack.call(
                "POST", "/commands/add-messages", token=key, json={"messages": batch}
            )
            assert answer.json["queued"] == len(batch), answer.json
        self.sink.wait_for(4, timeout=30)
        records = wait_until(self._all_attempted, timeout=30)
        self.deferred_due_at = next(r for r in records if r["id"] == "LATER")["deferred_ts"]

    def _all_attempted(self) -> list | None:
        records = self.stack.all_messages()
        return records if all(r["status"] != "pending" for r in records) else None

    def scrape(self, **headers: str) -> dict:
        answer = self.stack.client.get("/metrics", headers=headers)
        assert answer.status_code == 200, answer.data
        assert answer.content_type.startswith("text/plain")
        return samples(answer.data.decode())

    def close(self) -> None:
        self.stack.kill_worker(self.worker)  # nothing left to finish: no warm shutdown
        self.stack.stop()
        self.sink.stop()


@pytest.fixture(scope="module")
def delivered(tmp_path_factory) -> Iterator[Delivered]:
    built = Delivered(tmp_path_factory.mktemp("metrics"))
    try:
        yield built
    finally:
        built.close()


def test_outcome_counters_are_per_tenant_and_account(delivered):
    scraped = delivered.scrape()
    expected = {
        ("acme", "sent"): 3,
        ("acme", "failed"): 1,
        ("acme", "deferred"): 1,
        ("acme", "rate_limited"): 0,
        ("acme", "bounced"): 0,
        ("beta", "sent"): 1,
        ("beta", "failed"): 0,
    }
    for (tenant, kind), count in expected.items():
        name = f"mailproxy_messages_{kind}_total"
        assert value(scraped, name, tenant=tenant, account="main") == count, (tenant, kind)


def test_latency_histogram_counts_each_sent_message(delivered):
    scraped = delivered.scrape()
    name = "mailproxy_delivery_latency_seconds"
    assert value(scraped, f"{name}_count", tenant="acme") == 3
    assert value(scraped, f"{name}_count", tenant="beta") == 1
    assert value(scraped, f"{name}_bucket", tenant="acme", le="+Inf") == 3
    # Delivered within seconds of being posted.
    assert value(scraped, f"{name}_bucket", tenant="acme", le="30.0") == 3
    assert 0 <= value(scraped, f"{name}_sum", tenant="acme") < 90


def test_queue_depth_and_oldest_age_show_the_deferred_message_once_due(delivered):
    wait_until(lambda: time.time() > delivered.deferred_due_at + 2, timeout=10)
    scraped = delivered.scrape()
    assert value(scraped, "mailproxy_queue_depth", priority="medium") == 1
    assert value(scraped, "mailproxy_queue_depth", priority="immediate") == 0
    age = value(scraped, "mailproxy_oldest_pending_age_seconds", priority="medium")
    assert 1 <= age < 60
    assert value(scraped, "mailproxy_oldest_pending_age_seconds", priority="low") == 0


def test_report_lag_is_the_age_of_the_oldest_unreported_event(delivered):
    scraped = delivered.scrape()
    assert value(scraped, "mailproxy_report_lag_seconds", tenant="acme") > 0
    # beta has no application to report to: no lag to speak of.
    assert ("mailproxy_report_lag_seconds", (("tenant", "beta"),)) not in scraped
    assert value(scraped, "mailproxy_delivery_metrics_up") == 1


def test_worker_log_lines_about_a_message_are_json_with_its_ids(delivered):
    lines = (delivered.stack.logs / "w1.log").read_text().splitlines()
    about = [line for line in lines if "OK-0" in line]
    assert about, lines[-20:]
    for line in about:
        entry = json.loads(line)
        assert {"ts", "level", "logger", "message"} <= entry.keys()
        assert entry["message_id"] == "OK-0" and entry["tenant_id"] == "acme", entry
        assert entry["task_id"] and entry["task_name"] == "mailproxy.deliver_due", entry
    # Celery's own lines are JSON too (the startup banner is printed, not logged).
    ready = [line for line in lines if " ready." in line]
    assert ready and json.loads(ready[0])["logger"].startswith("celery")


def test_grafana_dashboard_uses_only_metrics_that_are_served(delivered):
    served = {name for name, _labels in delivered.scrape()}
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert expressions
    used = {
        name
        for expr in expressions
        for name in re.findall(r"\b((?:mailproxy|flask)_[a-z0-9_]+)\b", expr)
    }
    assert used and used <= served, sorted(used - served)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_counters_stay_when_retention_removes_the_messages(delivered):
    before = delivered.scrape()
    engine = delivered.stack.app.extensions["mailproxy"].engine
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE messages SET reported_ts = 1 WHERE status IN ('sent', 'error')"
        )
        # Retention keeps a message while any of its events is unreported: report them all.
        conn.exec_driver_sql("UPDATE message_events SET reported_ts = 1")
    answer = delivered.stack.call(
        "POST", "/commands/cleanup-messages", json={"older_than_seconds": 60}
    )
    assert answer.json["removed"] == 5, answer.json

    after = delivered.scrape()
    for name in ("sent", "failed", "deferred"):
        for tenant in ("acme", "beta"):
            key = (f"mailproxy_messages_{name}_total", (("account", "main"), ("tenant", tenant)))
            assert after[key] == before[key], key
    latency = ("mailproxy_delivery_latency_seconds_count", (("tenant", "acme"),))
    assert after[latency] == before[latency] == 3


def test_metrics_token_when_set_is_required(tmp_path):
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'm.sqlite'}", None, metrics_token="m-tok")
    try:
        assert stack.client.get("/metrics").status_code == 401
        wrong = stack.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json["ok"] is False
        good = stack.client.get("/metrics", headers={"Authorization": "Bearer m-tok"})
        assert good.status_code == 200 and b"mailproxy_queue_depth" in good.data
        assert stack.client.get("/health").status_code == 200  # nothing else changes
    finally:
        stack.stop()


def test_http_counter_sums_the_requests_of_every_gunicorn_worker(tmp_path):
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'g.sqlite'}", None)
    multiproc = tmp_path / "prometheus"
    port = free_port()
    env = {**stack.env(), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    command = [
        sys.executable, "-m", "gunicorn", "-c", "python:mailproxy_api.gunicorn_conf",
        "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
        "mailproxy_api.wsgi:app",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, timeout=30, proc=proc)
        sent = 0

        def both_workers_served() -> bool:
            nonlocal sent
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: requests.get(f"{base}/health"), range(16)))
            assert [a.status_code for a in answers] == [200] * 16
            sent += len(answers)
            # Each worker writes files of its own, named by its pid.
            return len({p.stem.rsplit("_", 1)[1] for p in multiproc.glob("histogram_*.db")}) == 2

        wait_until(both_workers_served, timeout=30, interval=0.05)
        for _ in range(4):  # whichever worker answers the scrape, the sum is the same
            scraped = samples(requests.get(f"{base}/metrics", timeout=10).text)
            count = value(
                scraped,
                "flask_http_request_duration_seconds_count",
                endpoint="service.health",
                method="GET",
                status="200",
            )
            assert count == sent
            assert value(scraped, "flask_http_request_total", method="GET", status="200") == sent
            assert value(scraped, "mailproxy_delivery_metrics_up") == 1
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # quick shutdown
        proc.wait(timeout=15)
        stack.stop()


def test_api_log_lines_under_gunicorn_are_json_and_name_the_refused_message(tmp_path):
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'j.sqlite'}", None, log_format="json")
    key = stack.setup_tenant(2525)
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "-c", "python:mailproxy_api.gunicorn_conf",
        "-w", "1", "-b", f"127.0.0.1:{port}", "mailproxy_api.wsgi:app",
    ]  # fmt: skip
    err, out = tmp_path / "api.err", tmp_path / "api.out"
    with err.open("wb") as err_file, out.open("wb") as out_file:
        proc = subprocess.Popen(
            command, cwd=REPO, env=stack.env(), stdout=out_file, stderr=err_file,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_port(port, timeout=30, proc=proc)
        good = {"id": "ok-1", "from": "a@example.com", "to": ["b@example.org"], "subject": "s"}
        bad = {**good, "id": "bad-1", "to": ["not an address"]}
        answer = requests.post(
            f"http://127.0.0.1:{port}/commands/add-messages",
            headers={"Authorization": f"Bearer {key}"},
            json={"messages": [good, bad]},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["queued"] == 1, answer.text

        def lines(path: Path) -> list[dict]:
            text = path.read_text()
            return [json.loads(line) for line in text.splitlines() if line.strip()]

        refused = wait_until(
            lambda: [e for e in lines(err) if e["message"].startswith("message refused")], 10
        )
        assert refused[0]["message_id"] == "bad-1" and refused[0]["tenant_id"] == "acme"
        assert "is not an email address" in refused[0]["message"]
        summary = [e for e in lines(err) if e["message"].startswith("add-messages")]
        assert summary == [{**summary[0], "message": "add-messages: 1 queued, 1 rejected"}]
        assert summary[0]["tenant_id"] == "acme" and "message_id" not in summary[0]
        # gunicorn's access log is JSON too, one object per request.
        access = wait_until(lambda: [e for e in lines(out) if "add-messages" in e["message"]], 10)
        assert access[0]["logger"] == "gunicorn.access"
        # Every line of both streams parsed above: no plain-text line slipped through.
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=15)
        stack.stop()


def test_requests_gunicorn_refuses_itself_get_a_json_answer(tmp_path):
    """A header over gunicorn's size limit never reaches the app: gunicorn answers it, and
    that answer is JSON like every other error of the API."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'h.sqlite'}", None)
    port = free_port()
    env = {**stack.env(), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    command = [
        sys.executable, "-m", "gunicorn", "-c", "python:mailproxy_api.gunicorn_conf",
        "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
        "mailproxy_api.wsgi:app",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    try:
        wait_port(port, timeout=30, proc=proc)
        answer = requests.get(
            f"http://127.0.0.1:{port}/health", headers={"X-Big": "a" * 70_000}, timeout=10
        )
        assert answer.status_code in (400, 431)
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json()["ok"] is False and answer.json()["error"]
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=15)
        stack.stop()
