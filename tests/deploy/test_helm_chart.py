"""The Helm chart, rendered by Helm's own engine with each CI values file and checked."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, ROOT

KUBERNETES_VERSION = "1.30.0"
RELEASE = "mp"
NAMESPACE = "mail"
QUEUES = {"mail.immediate", "mail.high", "mail.medium", "mail.low", "mail.maintenance"}
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))


def render(tools_python: Path, values: Path) -> dict[str, Any]:
    answer = subprocess.run(
        [
            str(tools_python),
            str(ROOT / "tests" / "deploy" / "chart_tool.py"),
            str(CHART),
            str(values),
            RELEASE,
            NAMESPACE,
            KUBERNETES_VERSION,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(answer.stdout)
    return result


def documents(rendered: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path, text in rendered["manifests"].items():
        if path.endswith(".yaml"):
            found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return found


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    ]


@pytest.fixture(scope="module", params=VALUES_FILES, ids=lambda p: p.stem)
def rendered(request, tools_python) -> tuple[str, dict[str, Any]]:
    result = render(tools_python, request.param)
    assert result["ok"], result.get("error")
    return request.param.stem, result


def test_there_are_at_least_three_ci_values_files():
    assert {p.stem for p in VALUES_FILES} >= {
        "default-values",
        "production-values",
        "minimal-values",
    }


def test_chart_lints_clean_and_every_resource_matches_the_kubernetes_schema(rendered):
    _, result = rendered
    assert result["lint"]["errors"] == []
    assert [m for m in result["lint"]["messages"] if m["severity"] >= 2] == []
    non_crd = {
        k: v
        for k, v in result["schema"].items()
        if not k.startswith(("ServiceMonitor/", "PrometheusRule/"))
    }
    assert non_crd and set(non_crd.values()) == {"ok"}, non_crd


def test_every_resource_carries_the_release_labels(rendered):
    _, result = rendered
    for doc in documents(result):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/name"] == "mailproxy"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_every_pod_runs_as_non_root_with_a_read_only_root_and_no_capabilities(rendered):
    _, result = rendered
    specs = pod_specs(documents(result))
    assert specs
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/var/lib/mailproxy", "/tmp"} <= mounts, name
            assert container["resources"]["requests"], name


def test_every_pod_reads_the_secrets_from_one_secret(rendered):
    stem, result = rendered
    docs = documents(result)
    secret_names = {
        source["secretRef"]["name"]
        for _, spec in pod_specs(docs)
        for container in spec["containers"]
        for source in container["envFrom"]
    }
    assert len(secret_names) == 1
    secrets = by_kind(docs, "Secret")
    if stem == "production-values":
        assert secrets == {} and secret_names == {"mailproxy-secrets"}
    else:
        (name, secret), *_ = secrets.items()
        assert secret_names == {name}
        assert set(secret["stringData"]) >= {
            "MAILPROXY_ADMIN_TOKEN",
            "MAILPROXY_ENCRYPTION_KEY",
            "MAILPROXY_DATABASE_URL",
            "MAILPROXY_BROKER_URL",
        }
        # It must exist before the migration hook on first install.
        assert "pre-install" in secret["metadata"]["annotations"]["helm.sh/hook"]


def test_api_deployment_service_and_probes_agree(rendered):
    _, result = rendered
    docs = documents(result)
    api = by_kind(docs, "Deployment")[f"{RELEASE}-mailproxy-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][0] == "gunicorn" and container["command"][-1] == (
        "mailproxy_api.wsgi:app"
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    (service,) = by_kind(docs, "Service").values()
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert api["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_worker_pools_consume_every_queue_and_beat_is_single(rendered):
    _, result = rendered
    deployments = by_kind(documents(result), "Deployment")
    consumed: list[str] = []
    for name, deployment in deployments.items():
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        if "worker" in command:
            assert command[:4] == ["celery", "-A", "mailproxy_workers", "worker"], name
            (queues,) = [c.removeprefix("--queues=") for c in command if c.startswith("--queues=")]
            consumed.extend(queues.split(","))
    assert set(consumed) == QUEUES and consumed.count("mail.maintenance") == 1
    beat = deployments[f"{RELEASE}-mailproxy-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "celery",
        "-A",
        "mailproxy_workers",
        "beat",
    ]


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(rendered):
    stem, result = rendered
    jobs = by_kind(documents(result), "Job")
    if stem == "minimal-values":
        assert jobs == {}
        return
    job = jobs[f"{RELEASE}-mailproxy-migrate"]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["containers"][0]["command"] == ["mail-proxy", "db", "upgrade"]


def test_production_values_add_ingress_autoscalers_and_a_service_monitor(tools_python):
    docs = documents(render(tools_python, CHART / "ci" / "production-values.yaml"))
    deployments = by_kind(docs, "Deployment")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {
        f"{RELEASE}-mailproxy-api",
        f"{RELEASE}-mailproxy-worker-urgent",
        f"{RELEASE}-mailproxy-worker-bulk",
    }
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        # An HPA owns the replica count: the Deployment must not fight it.
        assert "replicas" not in deployments[name]["spec"]
    (ingress,) = by_kind(docs, "Ingress").values()
    (service,) = by_kind(docs, "Service").values()
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == ["mail.example.com"]
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "http",
            "path": "/metrics",
            "interval": "15s",
            # The token /metrics requires, from the Secret the pods read it from.
            "authorization": {
                "type": "Bearer",
                "credentials": {"name": "mailproxy-secrets", "key": "MAILPROXY_METRICS_TOKEN"},
            },
        }
    ]


def test_rendering_fails_without_the_required_secrets(tools_python, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("database: {url: postgresql+psycopg2://db/mailproxy}\n")
    result = render(tools_python, values)
    assert not result["ok"] and "secrets.adminToken is required" in result["error"]


def test_rendering_fails_when_no_pool_consumes_the_maintenance_queue(tools_python, tmp_path):
    default = yaml.safe_load((CHART / "ci" / "default-values.yaml").read_text())
    default["workers"] = {"bulk": {"queues": ["mail.medium", "mail.low"]}}
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(default))
    result = render(tools_python, values)
    assert not result["ok"] and "mail.maintenance" in result["error"]


def test_every_top_level_values_key_is_documented_by_a_comment():
    lines = (CHART / "values.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        if line[:1].isalpha():
            nearby = lines[max(index - 1, 0) : index + 3]
            assert any(n.lstrip().startswith("#") for n in nearby), line
