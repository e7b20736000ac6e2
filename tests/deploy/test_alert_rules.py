"""The chart's alerting rules and the offload volume: rendered by Helm's engine and checked
against the metrics mailproxy serves and the Grafana dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

import mailproxy_api.metrics as metrics
from tests.deploy.conftest import CHART, DEPLOY
from tests.deploy.test_helm_chart import RELEASE, by_kind, documents, render

DASHBOARD = DEPLOY / "grafana" / "mailproxy-dashboard.json"
METRIC = re.compile(r"\b(mailproxy_[a-z0-9_]+)\b")
ALERTS = {
    "MailproxyQueueDeep",
    "MailproxyOldestPendingTooOld",
    "MailproxyErrorRateHigh",
    "MailproxyReportLag",
    "MailproxyAccountFailing",
    "MailproxyNoWorkerConsuming",
    "MailproxyMetricsUnavailable",
}


def _family(name: str) -> str:
    """A sample name back to its metric family (counters and histograms add suffixes)."""
    return re.sub(r"_(total|bucket|count|sum)$", "", name)


def _served_families() -> set[str]:
    names = {name for name, _help in metrics.COUNTERS.values()}
    names |= {
        value
        for key, value in vars(metrics).items()
        if key.isupper() and isinstance(value, str) and value.startswith("mailproxy_")
    }
    return names


def _values(tmp_path, **changes: Any):
    values = yaml.safe_load((CHART / "ci" / "default-values.yaml").read_text())
    values.update(changes)
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _rules(tools_python, tmp_path) -> list[dict[str, Any]]:
    result = render(tools_python, _values(tmp_path, prometheusRule={"enabled": True}))
    assert result["ok"], result.get("error")
    assert result["lint"]["errors"] == []
    docs = documents(result)
    (rule,) = by_kind(docs, "PrometheusRule").values()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    non_crd = {
        k: v
        for k, v in result["schema"].items()
        if not k.startswith(("ServiceMonitor/", "PrometheusRule/"))
    }
    assert non_crd and set(non_crd.values()) == {"ok"}, non_crd
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_rules_alert_on_what_operators_watch_and_keep_prometheus_templates(tools_python, tmp_path):
    rules = _rules(tools_python, tmp_path)
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
    deep = next(r for r in rules if r["alert"] == "MailproxyQueueDeep")
    assert deep["expr"] == "max by (priority) (mailproxy_queue_depth) > 5000"
    # Prometheus fills these in, not Helm.
    assert "{{ $labels.priority }}" in deep["annotations"]["summary"]


def test_rules_and_dashboard_name_the_same_served_metrics(tools_python, tmp_path):
    in_rules = {
        _family(n) for r in _rules(tools_python, tmp_path) for n in METRIC.findall(r["expr"])
    }
    dashboard = json.loads(DASHBOARD.read_text())
    in_dashboard = {
        _family(n)
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for n in METRIC.findall(target["expr"])
    }
    served = _served_families()
    assert in_rules <= served, sorted(in_rules - served)
    assert in_dashboard <= served, sorted(in_dashboard - served)
    # Every metric an alert fires on has a panel to look at when it fires.
    assert in_rules <= in_dashboard, sorted(in_rules - in_dashboard)
    assert {"mailproxy_queue_depth", "mailproxy_accounts_failing"} <= in_rules


def test_local_offload_mounts_one_shared_claim_in_api_and_worker_pods(tools_python, tmp_path):
    storage = {"local": {"enabled": True, "persistentVolumeClaim": "shared-offload"}}
    result = render(tools_python, _values(tmp_path, storage=storage))
    assert result["ok"], result.get("error")
    assert all(
        v == "ok"
        for k, v in result["schema"].items()
        if not k.startswith(("ServiceMonitor/", "PrometheusRule/"))
    )
    deployments = by_kind(documents(result), "Deployment")
    mounted = set()
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        (container,) = spec["containers"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        if name == f"{RELEASE}-mailproxy-beat":
            assert claims == set()
            continue
        assert claims == {"shared-offload"}, name
        assert "/var/lib/mailproxy-offload" in mounts, name
        assert env["MAILPROXY_OFFLOAD_LOCAL_DIR"] == "/var/lib/mailproxy-offload", name
        mounted.add(name)
    assert f"{RELEASE}-mailproxy-api" in mounted
    assert any("-worker-" in name for name in mounted)


def test_local_offload_without_a_claim_fails_to_render_and_says_why(tools_python, tmp_path):
    result = render(tools_python, _values(tmp_path, storage={"local": {"enabled": True}}))
    assert not result["ok"]
    assert "storage.local.persistentVolumeClaim" in result["error"]
    assert "ReadWriteMany" in result["error"]


def test_without_local_offload_no_claim_is_mounted(tools_python, tmp_path):
    result = render(tools_python, _values(tmp_path))
    assert result["ok"], result.get("error")
    for deployment in by_kind(documents(result), "Deployment").values():
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert not any("persistentVolumeClaim" in v for v in volumes)
