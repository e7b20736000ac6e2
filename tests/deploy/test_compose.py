"""deploy/docker-compose.yml: the services, their commands and the queues they consume."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY

QUEUES = {"mail.immediate", "mail.high", "mail.medium", "mail.low", "mail.maintenance"}


def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def queues_of(command: list[str]) -> list[str]:
    return command[command.index("-Q") + 1].split(",")


def test_compose_has_api_two_worker_pools_beat_postgres_redis_and_migrations():
    assert set(services()) == {
        "postgres",
        "redis",
        "migrate",
        "api",
        "worker-urgent",
        "worker-bulk",
        "beat",
    }


def test_every_mailproxy_service_builds_the_one_image_from_the_dockerfile():
    mailproxy = {n: s for n, s in services().items() if n not in ("postgres", "redis")}
    assert {s["image"] for s in mailproxy.values()} == {"mailproxy:${MAILPROXY_IMAGE_TAG:-latest}"}
    for service in mailproxy.values():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["read_only"] is True
        env = service["environment"]
        assert env["MAILPROXY_DATABASE_URL"].startswith("postgresql+psycopg2://")
        assert env["MAILPROXY_BROKER_URL"] == "redis://redis:6379/0"
        assert {"MAILPROXY_ADMIN_TOKEN", "MAILPROXY_ENCRYPTION_KEY"} <= set(env)


def test_pools_split_the_priorities_and_one_consumes_maintenance():
    urgent = services()["worker-urgent"]["command"]
    bulk = services()["worker-bulk"]["command"]
    assert urgent[:4] == bulk[:4] == ["celery", "-A", "mailproxy_workers", "worker"]
    assert queues_of(urgent) == ["mail.immediate", "mail.high"]
    assert set(queues_of(urgent)) | set(queues_of(bulk)) == QUEUES
    assert "mail.maintenance" in queues_of(bulk)


def test_migrations_finish_before_api_workers_and_beat_start():
    all_services = services()
    assert all_services["migrate"]["command"] == ["mail-proxy", "db", "upgrade"]
    assert all_services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-urgent", "worker-bulk", "beat"):
        depends = all_services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_beat_is_one_service_without_replicas_and_keeps_its_schedule_in_the_data_dir():
    beat = services()["beat"]
    assert beat["command"][:4] == ["celery", "-A", "mailproxy_workers", "beat"]
    assert "deploy" not in beat or beat["deploy"].get("replicas", 1) == 1
    assert "--schedule" in beat["command"]
    schedule = beat["command"][beat["command"].index("--schedule") + 1]
    assert schedule.startswith("/var/lib/mailproxy/")


def test_api_publishes_port_8000_on_loopback_only_and_runs_gunicorn():
    api = services()["api"]
    assert api["ports"] == ["127.0.0.1:8000:8000"]
    assert api["command"][0] == "gunicorn" and api["command"][-1] == "mailproxy_api.wsgi:app"


def test_env_example_names_every_secret_the_compose_file_requires():
    text = (DEPLOY / "docker-compose.yml").read_text()
    required = {part.split(":?")[0] for part in text.split("${")[1:] if ":?" in part.split("}")[0]}
    example = (DEPLOY / ".env.example").read_text()
    assert required == {"POSTGRES_PASSWORD", "MAILPROXY_ADMIN_TOKEN", "MAILPROXY_ENCRYPTION_KEY"}
    for name in required:
        assert f"\n{name}=" in example
