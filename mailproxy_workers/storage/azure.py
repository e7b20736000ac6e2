"""Azure Blob Storage through azure-storage-blob; read-only SAS links with an expiry."""

from __future__ import annotations

import datetime
from typing import Any

from mailproxy_models.db import now

from ..attachments import FetchedAttachment
from . import StorageError, content_disposition, content_type


class AzureStorage:
    def __init__(self, container: str, prefix: str, options: dict[str, Any]) -> None:
        from azure.storage.blob import BlobServiceClient

        self.prefix = prefix
        connection_string = options.get("connection_string")
        if not connection_string:
            raise StorageError("Azure storage needs storage_options.connection_string")
        self.service = BlobServiceClient.from_connection_string(connection_string)
        self.container = self.service.get_container_client(container)

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def upload(self, key: str, attachment: FetchedAttachment) -> None:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import ContentSettings

        settings = ContentSettings(
            content_type=content_type(attachment),
            content_disposition=content_disposition(attachment.filename),
        )
        try:
            if attachment.file is not None:
                attachment.file.seek(0)
                data: Any = attachment.file
            else:
                data = attachment.read()
            self.container.upload_blob(
                self._name(key),
                data,
                length=attachment.size,
                overwrite=True,
                content_settings=settings,
            )
        except AzureError as exc:
            raise StorageError(f"Azure container {self.container.container_name}: {exc}") from exc

    def download_url(self, key: str, filename: str, expires_in: float) -> tuple[str, float]:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        expires_at = now() + expires_in
        blob = self.container.get_blob_client(self._name(key))
        sas = generate_blob_sas(
            account_name=str(self.service.account_name),
            container_name=self.container.container_name,
            blob_name=blob.blob_name,
            account_key=self.service.credential.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.datetime.fromtimestamp(expires_at, datetime.UTC),
        )
        return f"{blob.url}?{sas}", expires_at
