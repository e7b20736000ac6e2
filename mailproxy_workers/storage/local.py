"""Local directory storage: files kept by this instance and served by its API through
signed, expiring links (``GET /files/<key>?expires=&signature=``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mailproxy_models.db import now
from mailproxy_models.download_links import link_secret, signed_url, stored_path
from mailproxy_models.settings import Settings

from ..attachments import FetchedAttachment
from . import StorageError


class LocalStorage:
    def __init__(self, root: Path, secret: bytes, base_url: str) -> None:
        self.root, self.secret, self.base_url = root, secret, base_url

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStorage:
        return cls(
            settings.effective_offload_local_dir,
            link_secret(settings),
            settings.effective_public_base_url,
        )

    def upload(self, key: str, attachment: FetchedAttachment) -> None:
        path = stored_path(self.root, key)
        if path is None:
            raise StorageError(f"refused storage key {key!r}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as handle:
                for block in attachment.chunks():
                    handle.write(block)
            os.replace(temporary, path)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    def download_url(self, key: str, filename: str, expires_in: float) -> tuple[str, float]:
        expires = int(now() + expires_in)
        return signed_url(self.secret, self.base_url, key, expires), float(expires)
