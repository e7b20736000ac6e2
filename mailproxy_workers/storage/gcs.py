"""Google Cloud Storage through google-cloud-storage; V4 signed GET links.

Signing needs a service account key (``service_account_json``, stored encrypted). With an
``endpoint`` (an emulator, or a private endpoint) requests go there; an emulator accepts
anonymous calls, so only signing uses the key then.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from mailproxy_models.db import now

from ..attachments import FetchedAttachment
from . import StorageError, content_disposition, content_type

MAX_EXPIRY = 7 * 86400  # V4 signatures live at most seven days


class GcsStorage:
    def __init__(self, bucket: str, prefix: str, options: dict[str, Any]) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        from google.oauth2 import service_account

        self.prefix = prefix
        self.endpoint = options.get("endpoint")
        info = options.get("service_account_json")
        if not info:
            # Without a key the SDK would look for ambient credentials (and a metadata
            # server): never guess whose account uploads a tenant's files.
            raise StorageError("GCS storage needs storage_options.service_account_json")
        self.signer = service_account.Credentials.from_service_account_info(
            json.loads(info) if isinstance(info, str) else info
        )
        client_credentials = AnonymousCredentials() if self.endpoint else self.signer
        self.client = storage.Client(
            project=options.get("project") or "mailproxy",
            credentials=client_credentials,
            client_options={"api_endpoint": self.endpoint} if self.endpoint else None,
        )
        self.bucket = self.client.bucket(bucket)

    def _blob(self, key: str) -> Any:
        return self.bucket.blob(f"{self.prefix}/{key}" if self.prefix else key)

    def upload(self, key: str, attachment: FetchedAttachment) -> None:
        from google.api_core.exceptions import GoogleAPICallError

        blob = self._blob(key)
        blob.content_disposition = content_disposition(attachment.filename)
        try:
            if attachment.file is not None:
                attachment.file.seek(0)
                blob.upload_from_file(
                    attachment.file, size=attachment.size, content_type=content_type(attachment)
                )
            else:
                blob.upload_from_string(attachment.read(), content_type=content_type(attachment))
        except (GoogleAPICallError, OSError, ValueError) as exc:
            raise StorageError(f"GCS bucket {self.bucket.name}: {exc}") from exc

    def download_url(self, key: str, filename: str, expires_in: float) -> tuple[str, float]:
        seconds = int(min(expires_in, MAX_EXPIRY))
        url = self._blob(key).generate_signed_url(
            version="v4",
            expiration=datetime.timedelta(seconds=seconds),
            method="GET",
            credentials=self.signer,
            api_access_endpoint=self.endpoint,
        )
        return url, now() + seconds
