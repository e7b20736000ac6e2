"""Where offloaded attachments go: one small interface, one module per backend.

A backend uploads a fetched attachment under a key and makes a download link that expires.
``open_storage`` picks the backend from the tenant's ``storage_url``: ``local``,
``s3://bucket/prefix``, ``gs://bucket/prefix`` or ``azure://container/prefix``. The SDK of a
backend is imported only when a tenant uses it (each is an optional extra).
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from mailproxy_models.secrets_box import SecretBox
from mailproxy_models.settings import Settings

from ..attachments import FetchedAttachment


class StorageError(Exception):
    """The storage refused or could not be reached; retrying may help."""


class StorageBackend(Protocol):
    def upload(self, key: str, attachment: FetchedAttachment) -> None:
        """Store the content under ``key`` (overwriting: uploads are idempotent)."""

    def download_url(self, key: str, filename: str, expires_in: float) -> tuple[str, float]:
        """A link anyone holding it may GET until it expires: (url, expiry as Unix time)."""


def content_type(attachment: FetchedAttachment) -> str:
    return (
        attachment.mime_type
        or mimetypes.guess_type(attachment.filename)[0]
        or "application/octet-stream"
    )


def content_disposition(filename: str) -> str:
    """``attachment`` with the original name (RFC 6266: ASCII fallback plus UTF-8 form)."""
    fallback = SAFE_NAME.sub("_", filename) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def object_key(tenant_id: str, md5: str, filename: str) -> str:
    """``<tenant>/<md5>/<safe name>``: same content and name, same key."""
    safe = SAFE_NAME.sub("_", filename).strip("._") or "attachment"
    return f"{quote(tenant_id, safe='')}/{md5}/{safe[:120]}"


def open_storage(
    storage_url: str, options: dict[str, Any], settings: Settings, box: SecretBox
) -> StorageBackend:
    """The backend a tenant's ``large_file_config`` names (sealed secrets decrypted here)."""
    secrets = {
        key.removesuffix("_enc"): box.decrypt(value)
        for key, value in options.items()
        if key.endswith("_enc") and isinstance(value, str)
    }
    plain = {key: value for key, value in options.items() if not key.endswith("_enc")}
    merged = {**plain, **secrets}
    parts = urlsplit(storage_url)
    prefix = parts.path.strip("/")
    if parts.scheme in ("", "local") and storage_url.rstrip(":/") == "local":
        from .local import LocalStorage

        return LocalStorage.from_settings(settings)
    if parts.scheme == "s3":
        from .s3 import S3Storage

        return S3Storage(parts.netloc, prefix, merged)
    if parts.scheme == "gs":
        from .gcs import GcsStorage

        return GcsStorage(parts.netloc, prefix, merged)
    if parts.scheme == "azure":
        from .azure import AzureStorage

        return AzureStorage(parts.netloc, prefix, merged)
    raise StorageError(f"unknown storage_url '{storage_url}'")
