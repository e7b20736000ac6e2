"""Attachments fetched at send time by deliver_one, against a real SMTP server: the bytes
arrive, a failed fetch is the attempt's outcome, a 25 MB file is streamed, not copied."""

from __future__ import annotations

import email
import hashlib
import subprocess
import sys
import tracemalloc
from email import policy
from pathlib import Path

import pytest

from mailproxy_models.claims import ClaimedMessage
from mailproxy_workers.delivery import AttachmentContext, deliver_one
from mailproxy_workers.smtp_pool import SmtpConnectionPool
from tests.support.http_files import Route
from tests.workers.conftest import loopback_endpoint, make_fetcher

SINK = Path(__file__).resolve().parents[1] / "support" / "smtp_sink.py"


def _message(
    attachments: list[dict], body: str = "See attached.\n.\nA dot line."
) -> ClaimedMessage:
    payload = {
        "id": "m1",
        "from": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "subject": "Your files",
        "body": body,
        "content_type": "plain",
        "attachments": attachments,
    }
    return ClaimedMessage(1, "acme", "main", "m1", payload, "token")


@pytest.fixture
def pool():
    pool = SmtpConnectionPool(timeout=10)
    yield pool
    pool.close_all()


def test_fetched_attachment_arrives_with_its_bytes(
    smtp_sink, pool, fetcher, loopback_tenant, file_server
):
    file_server.routes["/r.pdf"] = Route(body=b"%PDF-1.4 fetched")
    context = AttachmentContext(fetcher, loopback_tenant)
    attachment = {
        "filename": "r.pdf",
        "storage_path": file_server.url("/r.pdf"),
        "fetch_mode": "http_url",
    }
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), _message([attachment]), context)
    assert outcome.kind == "sent", outcome
    msg = smtp_sink.wait_for(1)[0].message()
    assert msg.get_body(("plain",)).get_content().splitlines() == [
        "See attached.",
        ".",
        "A dot line.",
    ]  # the lone dot line survived dot-stuffing
    [part] = list(msg.iter_attachments())
    assert part.get_filename() == "r.pdf" and part.get_content() == b"%PDF-1.4 fetched"


@pytest.mark.parametrize(
    ("status", "kind"), [(404, "permanent"), (410, "permanent"), (503, "temporary")]
)
def test_failed_fetch_is_the_outcome_with_a_clear_reason_and_nothing_is_sent(
    smtp_sink, pool, fetcher, loopback_tenant, file_server, status, kind
):
    file_server.routes["/f"] = Route(status=status)
    context = AttachmentContext(fetcher, loopback_tenant)
    attachment = {
        "filename": "f.pdf",
        "storage_path": file_server.url("/f"),
        "fetch_mode": "http_url",
    }
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), _message([attachment]), context)
    assert outcome.kind == kind
    assert outcome.description.startswith("attachment 'f.pdf': ")
    assert f"answered {status}" in outcome.description
    assert outcome.details["attachment"] == "f.pdf"
    assert smtp_sink.messages == []


def test_md5_mismatch_is_permanent_and_never_sent(smtp_sink, pool, fetcher, loopback_tenant):
    (loopback_tenant.filesystem_root / "a.txt").write_bytes(b"changed on disk")
    context = AttachmentContext(fetcher, loopback_tenant)
    attachment = {
        "filename": "a.txt",
        "storage_path": "a.txt",
        "fetch_mode": "filesystem",
        "content_md5": hashlib.md5(b"what the client had").hexdigest(),
    }
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), _message([attachment]), context)
    assert outcome.kind == "permanent" and "declared MD5" in outcome.description
    assert smtp_sink.messages == []


def test_a_25_mb_attachment_is_streamed_without_copies_in_memory(tmp_path, pool, loopback_tenant):
    size = 25 * 1024 * 1024
    content = Path(loopback_tenant.filesystem_root / "big.bin")
    with open(content, "wb") as handle:
        for i in range(25):
            handle.write(bytes([i]) * (1024 * 1024))
    outdir = tmp_path / "sink"
    # The sink in its own process, so that only the sender's memory is measured here.
    sink = subprocess.Popen(
        [sys.executable, str(SINK), "--port", "0", "--outdir", str(outdir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(sink.stdout.readline().split()[1])
        fetcher = make_fetcher(tmp_path, max_bytes=30 * 1024 * 1024)
        context = AttachmentContext(fetcher, loopback_tenant)
        attachment = {"filename": "big.bin", "storage_path": "big.bin", "fetch_mode": "filesystem"}
        tracemalloc.start()
        outcome = deliver_one(pool, loopback_endpoint(port), _message([attachment]), context)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert outcome.kind == "sent", outcome
        assert peak < 4 * 1024 * 1024, f"peak Python allocation {peak} bytes"
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    [eml] = sorted(outdir.glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    [part] = list(msg.iter_attachments())
    received = part.get_content()
    assert len(received) == size
    assert hashlib.md5(received).hexdigest() == hashlib.md5(content.read_bytes()).hexdigest()


@pytest.mark.parametrize("action", ["rewrite", "reject"])
def test_every_fetched_file_is_closed_after_the_attempt(
    tmp_path, smtp_sink, pool, fetcher, loopback_tenant, action
):
    import os

    from mailproxy_workers.offload import Offloader
    from mailproxy_workers.storage.local import LocalStorage

    for name in ("big1.bin", "big2.bin"):
        (loopback_tenant.filesystem_root / name).write_bytes(os.urandom(5000))  # held as files
    storage = LocalStorage(tmp_path / "offload", b"key", "http://127.0.0.1:1")
    context = AttachmentContext(
        fetcher,
        loopback_tenant,
        Offloader(4000, action, storage, 60),  # type: ignore[arg-type]
    )
    attachments = [
        {"filename": name, "storage_path": name, "fetch_mode": "filesystem"}
        for name in ("big1.bin", "big2.bin")
    ]
    deliver_one(
        pool, loopback_endpoint(smtp_sink.port), _message([]), context
    )  # pool connection open
    before = len(os.listdir("/proc/self/fd"))
    outcome = deliver_one(pool, loopback_endpoint(smtp_sink.port), _message(attachments), context)
    assert outcome.kind == ("sent" if action == "rewrite" else "permanent"), outcome
    assert len(os.listdir("/proc/self/fd")) == before
