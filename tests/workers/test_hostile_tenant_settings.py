"""What a tenant controls cannot stop a worker: absurd large-file settings and a FIFO in
the attachment root fail or hold only the message concerned, with a readable reason."""

from __future__ import annotations

import base64
import os
import threading

import pytest

from mailproxy_models.claims import ClaimedMessage
from mailproxy_models.instance import open_instance
from mailproxy_models.settings import Settings
from mailproxy_models.tenants import Tenant
from mailproxy_workers.delivery import AttachmentContext, deliver_messages, deliver_one
from mailproxy_workers.runtime import WorkerRuntime
from mailproxy_workers.smtp_pool import SmtpConnectionPool
from mailproxy_workers.tenant_attachments import attachment_context
from tests.workers.conftest import loopback_endpoint, make_fetcher

ATTACHMENT = {
    "filename": "a.pdf",
    "storage_path": base64.b64encode(b"%PDF-1.4 small").decode(),
    "fetch_mode": "base64",
}


def _message(pk: int, attachments: list[dict]) -> ClaimedMessage:
    payload = {
        "id": f"m{pk}",
        "from": "shop@example.com",
        "to": ["a@example.org"],
        "subject": f"message {pk}",
        "body": "Body",
        "attachments": attachments,
    }
    return ClaimedMessage(pk, "acme", "main", f"m{pk}", payload, "token")


@pytest.fixture
def pool():
    pool = SmtpConnectionPool(timeout=10)
    yield pool
    pool.close_all()


@pytest.fixture
def runtime(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    instance = open_instance(settings)
    yield WorkerRuntime(instance, None, "test", os.getpid(), make_fetcher(tmp_path))  # type: ignore[arg-type]
    instance.engine.dispose()


@pytest.mark.parametrize("max_size_mb", [1e308, float("inf")], ids=["1e308", "Infinity"])
def test_a_huge_large_file_threshold_means_no_attachment_is_over_it(
    runtime, smtp_sink, pool, max_size_mb
):
    tenant = Tenant(id="acme", large_file_config={"enabled": True, "max_size_mb": max_size_mb})
    context = attachment_context(tenant, runtime)
    endpoint = loopback_endpoint(smtp_sink.port)
    outcome = deliver_one(pool, endpoint, _message(1, [ATTACHMENT]), context)
    assert outcome.kind == "sent", outcome
    assert "warnings" not in str(outcome.details)


@pytest.mark.parametrize("bad", [float("nan"), -1, "ten", float("-inf")])
def test_an_unreadable_large_file_setting_holds_only_messages_with_attachments(
    runtime, smtp_sink, pool, bad
):
    tenant = Tenant(id="acme", large_file_config={"enabled": True, "max_size_mb": bad})
    context = attachment_context(tenant, runtime)
    endpoint = loopback_endpoint(smtp_sink.port)
    held = deliver_one(pool, endpoint, _message(1, [ATTACHMENT]), context)
    assert held.kind == "temporary", held
    assert "large_file_config.max_size_mb" in held.description
    assert deliver_one(pool, endpoint, _message(2, []), context).kind == "sent"
    assert len(smtp_sink.wait_for(1)) == 1


def test_a_fifo_in_the_attachment_root_fails_its_message_and_the_batch_goes_on(
    runtime, smtp_sink, pool, loopback_tenant
):
    fifo = loopback_tenant.filesystem_root / "report.pdf"
    os.mkfifo(fifo)
    context = AttachmentContext(runtime.fetcher, loopback_tenant)
    on_fifo = {"filename": "report.pdf", "storage_path": "report.pdf", "fetch_mode": "filesystem"}
    batch = [_message(1, [on_fifo]), _message(2, [ATTACHMENT]), _message(3, [])]
    outcomes: dict[str, object] = {}

    def send() -> None:
        for message, outcome in deliver_messages(
            pool, loopback_endpoint(smtp_sink.port), batch, context
        ):
            outcomes[message.id] = outcome

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    worker.join(timeout=15)
    try:
        assert not worker.is_alive(), "the worker is blocked opening the FIFO"
    finally:
        if worker.is_alive():  # release it (unfixed code), so the test run can end
            with open(fifo, "wb"):
                pass
            worker.join(timeout=15)
    failed = outcomes["m1"]
    assert failed.kind == "permanent", failed  # type: ignore[attr-defined]
    assert "not a regular file (a FIFO)" in failed.description  # type: ignore[attr-defined]
    assert [outcomes["m2"].kind, outcomes["m3"].kind] == ["sent", "sent"]  # type: ignore[attr-defined]
    assert len(smtp_sink.wait_for(2)) == 2
