"""Local directory storage: files kept by this instance and served by its API through
signed, expiring links (``GET /files/<key>?expires=&signature=``).

A file's modification time is the expiry of the last link signed for it (the worker moves it
forward when it signs one), so ``purge_expired_files`` removes a file once no link to it
can be valid any more, and never before, whatever each tenant's link lifetime.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mailproxy_models.db import now
from mailproxy_models.download_links import link_secret, signed_url, stored_path
from mailproxy_models.settings import Settings

from ..attachments import FetchedAttachment
from . import StorageError

UPLOAD_PREFIX = ".upload-"
PURGE_PREFIX = ".purge-"
# A file is written a moment before its link is signed, and an upload takes at most this
# long: younger files and temporary files are never purged.
WRITE_GRACE = 3600.0


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

    def _path(self, key: str) -> Path:
        path = stored_path(self.root, key)
        if path is None:
            raise StorageError(f"refused storage key {key!r}")
        return path

    def upload(self, key: str, attachment: FetchedAttachment) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=UPLOAD_PREFIX)
            with os.fdopen(fd, "wb") as handle:
                for block in attachment.chunks():
                    handle.write(block)
            _keep_until(Path(temporary), _expiry_of(path))
            os.replace(temporary, path)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    def download_url(self, key: str, filename: str, expires_in: float) -> tuple[str, float]:
        expires = int(now() + expires_in)
        path = self._path(key)
        try:
            _keep_until(path, expires)
        except OSError as exc:  # removed meanwhile: the attempt is retried and uploads again
            raise StorageError(f"cannot keep {path} until its link expires: {exc}") from exc
        return signed_url(self.secret, self.base_url, key, expires), float(expires)


def _expiry_of(path: Path) -> float:
    """The expiry an existing file carries (a new copy of the same key keeps it)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _keep_until(path: Path, expires: float) -> None:
    if path.stat().st_mtime < expires:
        os.utime(path, (expires, expires))


@dataclass
class PurgeResult:
    files: int = 0
    bytes: int = 0


def purge_expired_files(root: Path, current: float) -> PurgeResult:
    """Remove the files whose last link expired more than ``WRITE_GRACE`` ago, temporary
    files left by a crashed upload, and directories left empty."""
    result = PurgeResult()
    if not root.is_dir():
        return result
    limit = current - WRITE_GRACE
    for directory, subdirectories, files in os.walk(root, topdown=False):
        for name in files:
            _purge_file(Path(directory) / name, limit, result)
        for name in subdirectories:
            try:
                os.rmdir(Path(directory) / name)  # only succeeds when empty
            except OSError:
                pass
    return result


def _purge_file(path: Path, limit: float, result: PurgeResult) -> None:
    try:
        stat = path.stat()
        if stat.st_mtime >= limit:
            return
        if path.name.startswith((UPLOAD_PREFIX, PURGE_PREFIX)):
            path.unlink()
        elif not _removed_unless_renewed(path, limit):
            return
    except FileNotFoundError:  # removed or moved by another purge meanwhile
        return
    result.files += 1
    result.bytes += stat.st_size


def _removed_unless_renewed(path: Path, limit: float) -> bool:
    """A worker may upload the same key again, or sign a new link for it, between the look
    and the removal: the file is first moved aside, then looked at again, and put back if
    it was renewed meanwhile (a new copy of a key has the same content)."""
    aside = path.with_name(f"{PURGE_PREFIX}{path.name}")
    os.replace(path, aside)
    if aside.stat().st_mtime >= limit:
        os.replace(aside, path)
        return False
    aside.unlink()
    return True
