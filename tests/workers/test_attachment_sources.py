"""The four attachment sources, fetched when a message is sent, with time and size limits,
concurrency per message, and failures classified as temporary or permanent."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import threading
import time

import pytest

from mailproxy_models.secrets_box import SecretBox
from mailproxy_models.tenants import seal_client_auth
from mailproxy_workers.attachments import AttachmentError
from tests.support.http_files import Route
from tests.workers.conftest import make_fetcher


def _attachment(storage_path: str, fetch_mode: str, **extra) -> dict:
    return {
        "filename": "report.pdf",
        "storage_path": storage_path,
        "fetch_mode": fetch_mode,
        "mime_type": None,
        "content_md5": None,
        **extra,
    }


def _fetch_error(fetcher, attachment, sources) -> AttachmentError:
    with pytest.raises(AttachmentError) as caught:
        fetcher.fetch_all([attachment], sources)
    return caught.value


def test_base64_content_is_decoded(fetcher, loopback_tenant):
    encoded = base64.b64encode(b"%PDF-1.4 inline").decode()
    [got] = fetcher.fetch_all([_attachment(encoded, "base64")], loopback_tenant)
    assert got.read() == b"%PDF-1.4 inline"
    assert got.md5 == hashlib.md5(b"%PDF-1.4 inline").hexdigest()


def test_filesystem_file_is_read_from_the_tenant_root(fetcher, loopback_tenant):
    (loopback_tenant.filesystem_root / "invoices").mkdir()
    (loopback_tenant.filesystem_root / "invoices" / "a.pdf").write_bytes(b"from disk")
    relative = _attachment("invoices/a.pdf", "filesystem")
    absolute = _attachment(str(loopback_tenant.filesystem_root / "invoices/a.pdf"), "filesystem")
    assert [a.read() for a in fetcher.fetch_all([relative, absolute], loopback_tenant)] == [
        b"from disk",
        b"from disk",
    ]


def test_missing_file_is_a_permanent_failure(fetcher, loopback_tenant):
    error = _fetch_error(fetcher, _attachment("nope.pdf", "filesystem"), loopback_tenant)
    assert error.permanent and "file not found" in str(error)


def test_filesystem_without_a_configured_root_is_refused(fetcher, loopback_tenant):
    tenant = dataclasses.replace(loopback_tenant, filesystem_root=None)
    error = _fetch_error(fetcher, _attachment("a.pdf", "filesystem"), tenant)
    assert error.permanent and "not enabled" in str(error)


def test_http_url_is_fetched_with_get(fetcher, loopback_tenant, file_server):
    file_server.routes["/files/a.pdf"] = Route(body=b"over http")
    [got] = fetcher.fetch_all(
        [_attachment(file_server.url("/files/a.pdf"), "http_url")], loopback_tenant
    )
    assert got.read() == b"over http"
    assert [(r.method, r.path) for r in file_server.requests] == [("GET", "/files/a.pdf")]


def test_http_url_404_is_permanent_and_500_temporary(fetcher, loopback_tenant, file_server):
    file_server.routes["/broken"] = Route(status=503, body=b"try later")
    missing = _fetch_error(
        fetcher, _attachment(file_server.url("/gone"), "http_url"), loopback_tenant
    )
    assert missing.permanent and "404" in str(missing)
    broken = _fetch_error(
        fetcher, _attachment(file_server.url("/broken"), "http_url"), loopback_tenant
    )
    assert not broken.permanent and "503" in str(broken)


def test_refused_connection_is_temporary(fetcher, loopback_tenant):
    from tests.support.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/a.pdf"
    error = _fetch_error(fetcher, _attachment(url, "http_url"), loopback_tenant)
    assert not error.permanent and "cannot reach" in str(error)


def test_slow_server_hits_the_per_fetch_timeout_as_a_temporary_failure(
    tmp_path, loopback_tenant, file_server
):
    fetcher = make_fetcher(tmp_path, timeout=0.5)
    file_server.routes["/slow"] = Route(body=b"late", delay=3)
    started = time.monotonic()
    error = _fetch_error(
        fetcher, _attachment(file_server.url("/slow"), "http_url"), loopback_tenant
    )
    assert time.monotonic() - started < 2.5
    assert not error.permanent and "did not answer within 0.5s" in str(error)


def test_size_limit_applies_to_declared_and_to_streamed_lengths(
    tmp_path, loopback_tenant, file_server
):
    fetcher = make_fetcher(tmp_path, max_bytes=1000)
    file_server.routes["/declared"] = Route(body=b"x" * 1001)
    file_server.routes["/streamed"] = Route(body=b"y" * 100, stream_blocks=1000)
    for path in ("/declared", "/streamed"):
        error = _fetch_error(
            fetcher, _attachment(file_server.url(path), "http_url"), loopback_tenant
        )
        assert error.permanent and "too large" in str(error) and "limit is 1000 bytes" in str(error)
    (loopback_tenant.filesystem_root / "big.bin").write_bytes(b"z" * 1001)
    error = _fetch_error(fetcher, _attachment("big.bin", "filesystem"), loopback_tenant)
    assert error.permanent and "too large" in str(error)
    big = base64.b64encode(b"w" * 1001).decode()
    assert "too large" in str(_fetch_error(fetcher, _attachment(big, "base64"), loopback_tenant))


def test_endpoint_posts_the_storage_path_with_the_tenant_auth(
    fetcher, loopback_tenant, file_server
):
    file_server.endpoint_files["doc-42"] = b"from the application"
    file_server.endpoint_authorization = "Bearer tenant-secret"
    tenant = dataclasses.replace(
        loopback_tenant,
        endpoint_url=file_server.url("/attachments"),
        endpoint_auth={"method": "bearer", "token": "tenant-secret"},
    )
    [got] = fetcher.fetch_all([_attachment("doc-42", "endpoint")], tenant)
    assert got.read() == b"from the application"
    seen = file_server.requests[0]
    assert (seen.method, seen.path) == ("POST", "/attachments")
    assert b'"storage_path": "doc-42"' in seen.body


def test_auth_on_the_attachment_overrides_the_tenant_auth(fetcher, loopback_tenant, file_server):
    file_server.endpoint_files["doc-1"] = b"ok"
    file_server.endpoint_authorization = "Basic " + base64.b64encode(b"app:pw").decode()
    box = SecretBox(os.urandom(32))
    tenant = dataclasses.replace(
        loopback_tenant,
        endpoint_url=file_server.url("/attachments"),
        endpoint_auth={"method": "bearer", "token": "wrong"},
        box=box,
    )
    # As the API stores it: the attachment's own credentials sealed with the instance key.
    own = seal_client_auth(box, {"method": "basic", "user": "app", "password": "pw"}, None)
    assert "pw" not in str(own)
    [got] = fetcher.fetch_all([_attachment("doc-1", "endpoint", auth=own)], tenant)
    assert got.read() == b"ok"
    denied = _fetch_error(fetcher, _attachment("doc-1", "endpoint"), tenant)
    assert denied.permanent and "401" in str(denied)


def test_endpoint_without_a_client_base_url_is_a_permanent_failure(fetcher, loopback_tenant):
    error = _fetch_error(fetcher, _attachment("doc-1", "endpoint"), loopback_tenant)
    assert error.permanent and "client_base_url" in str(error)


def test_attachments_of_one_message_are_fetched_at_most_n_at_once(
    tmp_path, loopback_tenant, file_server
):
    fetcher = make_fetcher(tmp_path, concurrency=3)
    active, peak, lock = [0], [0], threading.Lock()
    original = fetcher.fetch_one

    def counting(attachment, sources):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return original(attachment, sources)
        finally:
            with lock:
                active[0] -= 1

    fetcher.fetch_one = counting  # observe, the fetch itself is the real one
    for i in range(8):
        file_server.routes[f"/f{i}"] = Route(body=f"file {i}".encode(), delay=0.3)
    started = time.monotonic()
    got = fetcher.fetch_all(
        [_attachment(file_server.url(f"/f{i}"), "http_url") for i in range(8)], loopback_tenant
    )
    elapsed = time.monotonic() - started
    assert [a.read() for a in got] == [f"file {i}".encode() for i in range(8)]
    assert peak[0] == 3
    assert 0.8 < elapsed < 2.0  # three rounds of 0.3 s, not eight


def test_a_permanent_failure_wins_over_a_temporary_one(fetcher, loopback_tenant, file_server):
    file_server.routes["/busy"] = Route(status=503)
    attachments = [
        _attachment(file_server.url("/busy"), "http_url"),
        _attachment("missing.pdf", "filesystem"),
    ]
    error = _fetch_error(fetcher, attachments[0], loopback_tenant)
    assert not error.permanent
    with pytest.raises(AttachmentError) as caught:
        fetcher.fetch_all(attachments, loopback_tenant)
    assert caught.value.permanent and "file not found" in str(caught.value)
