"""Large-file policy of a tenant: attachments over its threshold are sent with a warning,
make the message fail, or are uploaded to the tenant's storage and replaced by a link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailproxy_models.claims import ClaimedMessage

from .attachments import AttachmentError, FetchedAttachment
from .composer import DownloadLink
from .storage import StorageBackend, StorageError, object_key

Action = Literal["warn", "reject", "rewrite"]


@dataclass(frozen=True)
class Offloader:
    threshold_bytes: int
    action: Action
    storage: StorageBackend | None
    link_ttl_seconds: float
    # Why the tenant's storage could not be opened (bad settings, SDK not installed): only
    # messages that need it fail, temporarily, so that a fixed setting lets them through.
    storage_problem: str | None = None

    def apply(
        self, message: ClaimedMessage, fetched: list[FetchedAttachment]
    ) -> tuple[list[FetchedAttachment], list[DownloadLink], list[str]]:
        """(attachments still sent, download links, warnings). Idempotent: the object key
        is derived from tenant, content MD5 and name, so a retry overwrites the same one."""
        kept: list[FetchedAttachment] = []
        links: list[DownloadLink] = []
        notes: list[str] = []
        for attachment in fetched:
            if attachment.size <= self.threshold_bytes:
                kept.append(attachment)
                continue
            over = (
                f"attachment '{attachment.filename}' is {attachment.size} bytes, over the "
                f"tenant's large-file threshold of {self.threshold_bytes} bytes"
            )
            if self.action == "warn":
                notes.append(f"{over}: sent as is")
                kept.append(attachment)
            elif self.action == "reject":
                raise AttachmentError(
                    attachment.filename,
                    f"{attachment.size} bytes, over the tenant's large-file threshold of "
                    f"{self.threshold_bytes} bytes, and the tenant rejects large files",
                    permanent=True,
                )
            else:
                links.append(self._upload(message, attachment))
        return kept, links, notes

    def _upload(self, message: ClaimedMessage, attachment: FetchedAttachment) -> DownloadLink:
        if self.storage is None:
            raise AttachmentError(
                attachment.filename,
                f"cannot offload it: {self.storage_problem or 'no storage configured'}",
                permanent=False,
            )
        key = object_key(message.tenant_id, attachment.md5, attachment.filename)
        try:
            self.storage.upload(key, attachment)
            url, expires_at = self.storage.download_url(
                key, attachment.filename, self.link_ttl_seconds
            )
        except StorageError as exc:
            raise AttachmentError(
                attachment.filename, f"upload to storage failed: {exc}", permanent=False
            ) from exc
        return DownloadLink(attachment.filename, attachment.size, url, expires_at)
