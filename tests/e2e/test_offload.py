"""Large-file offload end to end: a message with a large attachment posted through the API
to a tenant whose action is rewrite, delivered by a real worker; the link in the delivered
email, fetched with a plain HTTP client, gives back the same bytes. One test per backend."""

from __future__ import annotations

import base64
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from werkzeug.serving import make_server

from mailproxy_models.wakeups import MAINTENANCE_QUEUE
from mailproxy_workers.storage.local import WRITE_GRACE
from tests.support.servers import free_port
from tests.support.stack import Stack, wait_until
from tests.support.storage_servers import throwaway_service_account

LINK = re.compile(r"- big\.bin \(2\.0 MB\): (\S+)")


@pytest.fixture
def served_stack(tmp_path, postgres_url, redis_url) -> Iterator[Stack]:
    """A stack whose API also listens on a real port, so local-storage links can be GET."""
    port = free_port()
    stack = Stack(
        tmp_path,
        postgres_url,
        redis_url,
        public_base_url=f"http://127.0.0.1:{port}",
        offload_local_dir=tmp_path / "offload",
    )
    server = make_server("127.0.0.1", port, stack.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stack
    finally:
        server.shutdown()
        thread.join(timeout=10)
        stack.stop()


def _bucket() -> str:
    return f"mp-{uuid.uuid4().hex[:12]}"


def _offload_and_follow_link(
    stack: Stack, smtp_sink, storage_url: str, options: dict[str, Any]
) -> tuple[bytes, str]:
    key = stack.setup_tenant(smtp_sink.port)
    config = {
        "enabled": True,
        "max_size_mb": 1,
        "action": "rewrite",
        "storage_url": storage_url,
        "storage_options": options,
    }
    answer = stack.call("PUT", "/tenant/acme", json={"large_file_config": config})
    assert answer.status_code == 200, answer.json
    shown = answer.json["tenant"]["large_file_config"]["storage_options"]
    assert all(
        v == "***"
        for k, v in shown.items()
        if k in ("secret_access_key", "connection_string", "service_account_json")
    )
    stack.start_worker("w1")
    content = os.urandom(2 * 1024 * 1024)
    message = {
        "id": "big-1",
        "from": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "subject": "Your video",
        "body": "Here it is.",
        "attachments": [
            {"filename": "big.bin", "storage_path": "base64:" + base64.b64encode(content).decode()},
            {"filename": "small.txt", "storage_path": "base64:" + base64.b64encode(b"hi").decode()},
        ],
    }
    answer = stack.call("POST", "/commands/add-messages", token=key, json={"messages": [message]})
    assert answer.json["queued"] == 1, answer.json
    [received] = smtp_sink.wait_for(1, timeout=60)
    mime = received.message()
    assert [p.get_filename() for p in mime.iter_attachments()] == ["small.txt"]
    body = mime.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.startswith("Here it is.\n\nLarge attachments, available for download until ")
    url = LINK.search(body).group(1)
    downloaded = requests.get(url, timeout=30)
    assert downloaded.status_code == 200, downloaded.text[:300]
    assert downloaded.content == content
    stack.wait_all_status(1, "sent", timeout=30)
    return content, url


def test_local_storage_link_is_served_by_the_api_signed_and_expiring(served_stack, smtp_sink):
    _content, url = _offload_and_follow_link(served_stack, smtp_sink, "local", {})
    assert url.startswith(served_stack.settings.effective_public_base_url + "/files/acme/")
    expires = int(re.search(r"expires=(\d+)", url).group(1))
    assert 7 * 86400 - 120 < expires - time.time() <= 7 * 86400
    tampered_signature = url[:-1] + ("1" if url.endswith("0") else "0")
    assert requests.get(tampered_signature, timeout=10).status_code == 403
    extended = url.replace(f"expires={expires}", f"expires={expires + 1}")
    assert requests.get(extended, timeout=10).status_code == 403
    other_file = re.sub(r"/files/acme/[0-9a-f]{32}/", "/files/acme/" + "0" * 32 + "/", url)
    assert requests.get(other_file, timeout=10).status_code == 403
    from mailproxy_models.download_links import link_secret, signed_url

    key = url.split("/files/")[1].split("?")[0]
    secret = link_secret(served_stack.settings)
    expired = signed_url(secret, served_stack.settings.effective_public_base_url, key, 1000)
    answer = requests.get(expired, timeout=10)
    assert answer.status_code == 403 and "expired" in answer.json()["error"]
    escape = url.split("/files/")[0] + "/files/..%2F..%2Fetc/passwd?expires=1&signature=x"
    assert requests.get(escape, timeout=10).status_code == 404


def test_local_files_are_removed_by_beat_once_their_links_have_expired(served_stack, smtp_sink):
    """Real worker and beat on PostgreSQL and Redis: the file carries its link's expiry,
    and once that is over an hour past, the purge removes it and the link answers 404."""
    _content, url = _offload_and_follow_link(served_stack, smtp_sink, "local", {})
    key = unquote(url.split("/files/")[1].split("?")[0])
    path = served_stack.settings.effective_offload_local_dir / key
    expires = int(re.search(r"expires=(\d+)", url).group(1))
    assert path.stat().st_mtime == expires
    long_ago = time.time() - WRITE_GRACE - 60  # as if the link had expired over an hour ago
    os.utime(path, (long_ago, long_ago))
    served_stack.settings = served_stack.settings.model_copy(update={"cleanup_interval": 1.0})
    served_stack.start_worker("janitor", beat=True, queues=MAINTENANCE_QUEUE)
    wait_until(lambda: not path.exists(), 30)
    assert not path.parent.exists()
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 404 and "removed after its expiry" in answer.json()["error"]


def test_s3_link_in_the_email_gives_back_the_bytes(pg_stack, smtp_sink, s3_server):
    import boto3

    bucket = _bucket()
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    options = {
        "endpoint_url": s3_server,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "addressing_style": "path",
    }
    _content, url = _offload_and_follow_link(pg_stack, smtp_sink, f"s3://{bucket}/mail", options)
    assert url.startswith(f"{s3_server}/{bucket}/mail/acme/") and "X-Amz-Expires=604800" in url


def test_gcs_link_in_the_email_gives_back_the_bytes(pg_stack, smtp_sink, gcs_server):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    bucket = _bucket()
    gcs.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs_server},
    ).create_bucket(bucket)
    options = {"endpoint": gcs_server, "service_account_json": throwaway_service_account()}
    _content, url = _offload_and_follow_link(pg_stack, smtp_sink, f"gs://{bucket}", options)
    assert url.startswith(f"{gcs_server}/{bucket}/acme/") and "X-Goog-Expires=604800" in url


def test_azure_link_in_the_email_gives_back_the_bytes(pg_stack, smtp_sink, azure_server):
    from azure.storage.blob import BlobServiceClient

    container = _bucket()
    BlobServiceClient.from_connection_string(azure_server).create_container(container)
    options = {"connection_string": azure_server}
    _content, url = _offload_and_follow_link(
        pg_stack, smtp_sink, f"azure://{container}/mail", options
    )
    assert f"/{container}/mail/acme/" in url and "sig=" in url
    assert requests.get(url.split("?")[0], timeout=10).status_code in (403, 404)
