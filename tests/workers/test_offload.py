"""Large-file policy: warn, reject, or upload to the tenant's storage and send a link; each
storage backend against its real server, the link fetched with a plain HTTP client."""

from __future__ import annotations

import hashlib
import os
import time
import uuid

import pytest
import requests

from mailproxy_models.claims import ClaimedMessage
from mailproxy_workers.attachments import AttachmentError, FetchedAttachment
from mailproxy_workers.offload import Offloader
from mailproxy_workers.storage import object_key
from mailproxy_workers.storage.azure import AzureStorage
from mailproxy_workers.storage.gcs import GcsStorage
from mailproxy_workers.storage.local import (
    WRITE_GRACE,
    LocalStorage,
    _removed_unless_renewed,
    purge_expired_files,
)
from mailproxy_workers.storage.s3 import S3Storage
from tests.support.storage_servers import throwaway_service_account

MB = 1024 * 1024


def _attachment(size: int, name: str = "video.mp4") -> FetchedAttachment:
    data = os.urandom(size)
    return FetchedAttachment(name, None, hashlib.md5(data).hexdigest(), size, content=data)


MESSAGE = ClaimedMessage(1, "acme", "main", "m1", {}, "token")


def test_under_the_threshold_nothing_changes():
    small = _attachment(1000)
    offloader = Offloader(2000, "reject", None, 60)
    assert offloader.apply(MESSAGE, [small]) == ([small], [], [])


def test_warn_sends_as_is_and_says_so():
    big = _attachment(3000)
    kept, links, notes = Offloader(2000, "warn", None, 60).apply(MESSAGE, [big])
    assert kept == [big] and links == []
    assert notes == [
        "attachment 'video.mp4' is 3000 bytes, over the tenant's large-file threshold of "
        "2000 bytes: sent as is"
    ]


def test_reject_fails_the_message_permanently_with_the_reason():
    with pytest.raises(AttachmentError) as caught:
        Offloader(2000, "reject", None, 60).apply(MESSAGE, [_attachment(3000)])
    assert caught.value.permanent
    assert "3000 bytes, over the tenant's large-file threshold of 2000 bytes" in str(caught.value)
    assert "rejects large files" in str(caught.value)


def test_a_failed_upload_is_a_temporary_failure(s3_server):
    options = {"endpoint_url": s3_server, "access_key_id": "t", "secret_access_key": "t"}
    storage = S3Storage("no-such-bucket-here", "", {**options, "addressing_style": "path"})
    with pytest.raises(AttachmentError) as caught:
        Offloader(10, "rewrite", storage, 60).apply(MESSAGE, [_attachment(100)])
    assert not caught.value.permanent and "upload to storage failed" in str(caught.value)
    assert "NoSuchBucket" in str(caught.value)


def _bucket() -> str:
    return f"mp-{uuid.uuid4().hex[:12]}"


def _round_trip(storage, size: int = 3 * MB) -> None:
    """Upload through the backend, follow the link as a recipient would, compare bytes."""
    big = _attachment(size, "Bericht Q3 ✓.pdf")
    small = _attachment(10, "note.txt")
    kept, [link], notes = Offloader(MB, "rewrite", storage, 7 * 86400).apply(MESSAGE, [big, small])
    assert kept == [small] and notes == []
    assert link.filename == "Bericht Q3 ✓.pdf" and link.size == size
    assert 7 * 86400 - 60 < link.expires_at - time.time() <= 7 * 86400
    answer = requests.get(link.url, timeout=30)
    assert answer.status_code == 200
    assert answer.content == big.content


def test_s3_upload_and_presigned_link(s3_server):
    import boto3

    bucket = _bucket()
    options = {
        "endpoint_url": s3_server,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "addressing_style": "path",
    }
    boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    storage = S3Storage(bucket, "offload", options)
    _round_trip(storage, size=12 * MB)  # over boto3's multipart threshold
    url, _ = storage.download_url("acme/x/y.pdf", "y.pdf", 7 * 86400)
    assert f"/{bucket}/offload/acme/x/y.pdf?" in url and "X-Amz-Expires=604800" in url


def test_gcs_upload_and_signed_link(gcs_server):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    bucket = _bucket()
    gcs.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs_server},
    ).create_bucket(bucket)
    options = {"endpoint": gcs_server, "service_account_json": throwaway_service_account()}
    storage = GcsStorage(bucket, "", options)
    _round_trip(storage)
    url, _ = storage.download_url("acme/x/y.pdf", "y.pdf", 7 * 86400)
    assert url.startswith(f"{gcs_server}/{bucket}/acme/x/y.pdf?") and "X-Goog-Signature" in url


def test_azure_upload_and_sas_link_that_azurite_enforces(azure_server):
    from azure.storage.blob import BlobServiceClient

    container = _bucket()
    BlobServiceClient.from_connection_string(azure_server).create_container(container)
    storage = AzureStorage(container, "offload", {"connection_string": azure_server})
    _round_trip(storage)
    url, _ = storage.download_url("acme/0/missing.pdf", "missing.pdf", 60)
    unsigned = url.split("?")[0]
    assert requests.get(unsigned, timeout=10).status_code in (403, 404)
    tampered = url.replace("sig=", "sig=AAAA")
    assert requests.get(tampered, timeout=10).status_code == 403


def test_a_storage_that_cannot_be_opened_fails_only_messages_needing_it_temporarily():
    from mailproxy_workers.storage import StorageError

    with pytest.raises(StorageError, match="service_account_json"):
        GcsStorage("bucket", "", {})
    offloader = Offloader(MB, "rewrite", None, 60, storage_problem="storage gs://b: no key")
    small = _attachment(10)
    assert offloader.apply(MESSAGE, [small]) == ([small], [], [])
    with pytest.raises(AttachmentError) as caught:
        offloader.apply(MESSAGE, [_attachment(2 * MB)])
    assert not caught.value.permanent and "no key" in str(caught.value)


def _local(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "offload", b"k" * 32, "http://127.0.0.1:8000")


def _age(path, seconds_ago: float) -> None:
    then = time.time() - seconds_ago
    os.utime(path, (then, then))


def test_a_local_file_is_kept_until_the_last_link_to_it_expires(tmp_path):
    storage = _local(tmp_path)
    big = _attachment(3000)
    [link] = Offloader(2000, "rewrite", storage, 30 * 86400).apply(MESSAGE, [big])[1]
    path = storage.root / object_key("acme", big.md5, big.filename)
    assert path.stat().st_mtime == link.expires_at
    # The same file sent again by a tenant with shorter links: the month-long link still
    # holds, by upload and by signing.
    Offloader(2000, "rewrite", storage, 86400).apply(MESSAGE, [big])
    assert path.stat().st_mtime == link.expires_at
    current = time.time()
    assert purge_expired_files(storage.root, current).files == 0
    assert purge_expired_files(storage.root, link.expires_at + WRITE_GRACE - 60).files == 0
    purged = purge_expired_files(storage.root, link.expires_at + WRITE_GRACE + 60)
    assert (purged.files, purged.bytes) == (1, 3000)
    assert not path.exists() and list(storage.root.iterdir()) == []  # empty directories too


def test_purge_removes_crashed_uploads_but_not_one_in_progress(tmp_path):
    storage = _local(tmp_path)
    folder = storage.root / "acme" / ("0" * 32)
    folder.mkdir(parents=True)
    crashed, running = folder / ".upload-old", folder / ".upload-new"
    crashed.write_bytes(b"partial")
    running.write_bytes(b"partial")
    _age(crashed, WRITE_GRACE + 60)
    assert purge_expired_files(storage.root, time.time()).files == 1
    assert not crashed.exists() and running.exists()


def test_a_file_renewed_while_being_purged_is_put_back(tmp_path):
    storage = _local(tmp_path)
    big = _attachment(3000)
    [link] = Offloader(2000, "rewrite", storage, 60).apply(MESSAGE, [big])[1]
    path = storage.root / object_key("acme", big.md5, big.filename)
    # The purge saw it expired; a worker signed a new link before it was moved aside.
    assert path.stat().st_mtime == link.expires_at
    assert not _removed_unless_renewed(path, limit=time.time() - WRITE_GRACE)
    assert path.read_bytes() == big.content
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_file_removed_before_its_link_is_signed_fails_the_attempt_temporarily(tmp_path):
    storage = _local(tmp_path)

    class Vanishing(LocalStorage):
        def upload(self, key, attachment):
            super().upload(key, attachment)
            (self.root / key).unlink()  # a purge took it in between

    vanishing = Vanishing(storage.root, storage.secret, storage.base_url)
    with pytest.raises(AttachmentError) as caught:
        Offloader(2000, "rewrite", vanishing, 60).apply(MESSAGE, [_attachment(3000)])
    assert not caught.value.permanent and "until its link expires" in str(caught.value)
