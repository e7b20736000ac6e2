"""Fetching attachments when a message is sent: base64, filesystem, http_url and endpoint.

Every fetch has a time limit and a size limit and streams into a spool file in the cache
directory while its MD5 is computed, so a large attachment is never held in memory. A
failure is an ``AttachmentError`` that says whether trying again later can help
(``permanent`` False: timeouts, refused connections, 5xx) or not (404, too large, a path
or address that is refused, content that does not match its declared MD5).

Security: a ``filesystem`` path never leaves the tenant's root (``..``, absolute paths
elsewhere and symlinks pointing out are refused after resolution); ``http_url`` and
``endpoint`` connections go through the outbound guard (outbound_guard.py): DNS names
resolving to (or redirects towards) loopback, link-local or private addresses are refused
unless the operator allowed the tenant them. A filesystem path is opened without blocking
and only when it is a regular file (a FIFO or a device would hang the worker).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import requests

from mailproxy_models.secrets_box import SecretBox
from mailproxy_models.tenants import open_auth

from .attachment_cache import AttachmentCache
from .outbound_guard import (
    ALL_NETWORKS,
    ForbiddenAddress,
    IPNetwork,
    address_is_forbidden,
    find_forbidden,
    guarded_session,
)

__all__ = ["ALL_NETWORKS", "IPNetwork", "address_is_forbidden"]  # also imported from here

CHUNK = 64 * 1024
# 4xx answers that may change by themselves: retried like server errors.
TEMPORARY_HTTP = frozenset({408, 425, 429})


class AttachmentError(Exception):
    """An attachment could not be had; ``permanent`` says retrying cannot help."""

    def __init__(self, filename: str, reason: str, permanent: bool) -> None:
        super().__init__(f"attachment '{filename}': {reason}")
        self.filename, self.reason, self.permanent = filename, reason, permanent


@dataclass(frozen=True)
class FetchLimits:
    timeout: float
    max_bytes: int
    concurrency: int


@dataclass(frozen=True)
class TenantSources:
    """What one tenant's attachments may be fetched from (secrets decrypted)."""

    tenant_id: str
    filesystem_root: Path | None = None
    # Networks outside the public internet this tenant may fetch from (all of them with
    # ``0.0.0.0/0`` and ``::/0``); public addresses are always allowed.
    private_networks: tuple[IPNetwork, ...] = ()
    endpoint_url: str | None = None
    endpoint_auth: dict[str, Any] | None = None
    box: SecretBox | None = None  # opens the auth an attachment carries (stored sealed)

    def attachment_auth(self, attachment: dict[str, Any]) -> dict[str, Any] | None:
        sealed = attachment.get("auth")
        if not sealed or self.box is None:
            return None
        return open_auth(self.box, sealed)


@dataclass
class FetchedAttachment:
    """Content of one attachment: bytes when small, else an open file (unlinked or cached)."""

    filename: str
    mime_type: str | None
    md5: str
    size: int
    content: bytes | None = None
    file: BinaryIO | None = None
    content_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        if self.content is not None:
            for start in range(0, len(self.content), size):
                yield self.content[start : start + size]
            return
        assert self.file is not None
        self.file.seek(0)
        while block := self.file.read(size):
            yield block

    def read(self) -> bytes:
        return self.content if self.content is not None else b"".join(self.chunks())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class AttachmentFetcher:
    """Fetches the attachments of one message at a time, up to ``concurrency`` at once."""

    def __init__(self, limits: FetchLimits, cache: AttachmentCache) -> None:
        self.limits = limits
        self.cache = cache

    def fetch_all(
        self, attachments: list[dict[str, Any]], sources: TenantSources
    ) -> list[FetchedAttachment]:
        """All or nothing: on the first error the others are closed and the error raised.
        A permanent error wins over a temporary one, so the event names the real cause."""
        if not attachments:
            return []
        workers = max(1, min(self.limits.concurrency, len(attachments)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="attachment") as pool:
            futures = [pool.submit(self.fetch_one, a, sources) for a in attachments]
        fetched: list[FetchedAttachment] = []
        errors: list[AttachmentError] = []
        for future in futures:
            try:
                fetched.append(future.result())
            except AttachmentError as exc:
                errors.append(exc)
        if errors:
            for item in fetched:
                item.close()
            raise min(errors, key=lambda e: 0 if e.permanent else 1)
        return fetched

    def fetch_one(self, attachment: dict[str, Any], sources: TenantSources) -> FetchedAttachment:
        name = attachment["filename"]
        declared = (attachment.get("content_md5") or "").lower() or None
        if declared:
            cached = self.cache.get(declared)
            if cached is not None:
                return _fetched(attachment, declared, cached)
        mode = attachment.get("fetch_mode", "base64")
        source = {
            "base64": self._base64,
            "filesystem": self._filesystem,
            "http_url": self._http_url,
            "endpoint": self._endpoint,
        }.get(mode)
        if source is None:
            raise AttachmentError(name, f"unknown fetch_mode '{mode}'", permanent=True)
        fd, spool = self.cache.spool_file()
        handle = os.fdopen(fd, "w+b")
        try:
            writer = _LimitedWriter(handle, name, self.limits.max_bytes)
            source(attachment, sources, writer)
            md5 = writer.md5.hexdigest()
            if declared and declared != md5:
                raise AttachmentError(
                    name,
                    f"content does not match its declared MD5 {declared} (got {md5}); not sent",
                    permanent=True,
                )
            handle.flush()
            self.cache.adopt_file(md5, spool, writer.size)
        except BaseException:
            handle.close()
            spool.unlink(missing_ok=True)
            raise
        if writer.size <= self.cache.memory_item_bytes:
            handle.seek(0)
            data = handle.read()
            handle.close()
            self.cache.put_bytes(md5, data)
            return _fetched(attachment, md5, data)
        return _fetched(attachment, md5, handle)

    # -- sources ---------------------------------------------------------------------------
    def _base64(self, attachment: dict[str, Any], _s: TenantSources, out: _LimitedWriter) -> None:
        text = attachment["storage_path"].removeprefix("base64:")
        step = 4 * 16 * 1024  # whole base64 quanta
        try:
            for start in range(0, len(text), step):
                out.write(base64.b64decode(text[start : start + step], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise AttachmentError(
                attachment["filename"], "not valid base64 content", permanent=True
            ) from exc

    def _filesystem(
        self, attachment: dict[str, Any], sources: TenantSources, out: _LimitedWriter
    ) -> None:
        name = attachment["filename"]
        path = resolve_under_root(sources.filesystem_root, attachment["storage_path"], name)
        try:
            # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise AttachmentError(name, "file not found", permanent=True) from exc
        except OSError as exc:
            raise AttachmentError(name, f"cannot open the file: {exc.strerror}", True) from exc
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            os.close(fd)
            kind = "a FIFO" if stat.S_ISFIFO(status.st_mode) else "a directory or device"
            raise AttachmentError(
                name, f"not a regular file ({kind}): only regular files are sent", True
            )
        with os.fdopen(fd, "rb") as handle:
            out.check_size(status.st_size)
            deadline = time.monotonic() + self.limits.timeout
            while block := handle.read(CHUNK):
                out.write(block)
                if time.monotonic() > deadline:
                    raise AttachmentError(name, "reading the file timed out", permanent=False)

    def _http_url(
        self, attachment: dict[str, Any], sources: TenantSources, out: _LimitedWriter
    ) -> None:
        url = attachment["storage_path"]
        auth = sources.attachment_auth(attachment)
        self._download("GET", url, attachment, sources, out, auth=auth, body=None)

    def _endpoint(
        self, attachment: dict[str, Any], sources: TenantSources, out: _LimitedWriter
    ) -> None:
        name = attachment["filename"]
        if not sources.endpoint_url:
            raise AttachmentError(
                name, "the tenant has no client_base_url for endpoint attachments", True
            )
        auth = sources.attachment_auth(attachment) or sources.endpoint_auth
        body = {"storage_path": attachment["storage_path"], "filename": name}
        self._download("POST", sources.endpoint_url, attachment, sources, out, auth, body)

    def _download(
        self,
        method: str,
        url: str,
        attachment: dict[str, Any],
        sources: TenantSources,
        out: _LimitedWriter,
        auth: dict[str, Any] | None,
        body: dict[str, Any] | None,
    ) -> None:
        name = attachment["filename"]
        session = guarded_session(sources.private_networks)
        deadline = time.monotonic() + self.limits.timeout
        try:
            with session.request(
                method,
                url,
                json=body,
                headers=_auth_headers(auth),
                stream=True,
                timeout=self.limits.timeout,
                allow_redirects=True,
            ) as response:
                _check_status(name, url, response)
                length = response.headers.get("Content-Length")
                if length and length.isdigit():
                    out.check_size(int(length))
                for block in response.iter_content(CHUNK):
                    out.write(block)
                    if time.monotonic() > deadline:
                        raise AttachmentError(
                            name, f"download took over {self.limits.timeout:g}s", False
                        )
        except ForbiddenAddress as exc:
            raise AttachmentError(name, str(exc), permanent=True) from exc
        except requests.exceptions.InvalidSchema as exc:
            raise AttachmentError(name, f"refused URL scheme ({exc})", permanent=True) from exc
        except requests.exceptions.TooManyRedirects as exc:
            raise AttachmentError(name, "too many redirects", permanent=True) from exc
        except requests.exceptions.ConnectionError as exc:
            forbidden = find_forbidden(exc)
            if forbidden is not None:
                raise AttachmentError(name, str(forbidden), permanent=True) from exc
            raise AttachmentError(name, f"cannot reach {url}: {exc}", permanent=False) from exc
        except requests.exceptions.Timeout as exc:
            raise AttachmentError(
                name, f"{url} did not answer within {self.limits.timeout:g}s", permanent=False
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise AttachmentError(name, f"fetching {url} failed: {exc}", permanent=False) from exc
        finally:
            session.close()


def _fetched(attachment: dict[str, Any], md5: str, content: bytes | BinaryIO) -> FetchedAttachment:
    if isinstance(content, bytes):
        return FetchedAttachment(
            attachment["filename"],
            attachment.get("mime_type"),
            md5,
            len(content),
            content=content,
            content_id=attachment.get("content_id"),
        )
    size = os.fstat(content.fileno()).st_size
    return FetchedAttachment(
        attachment["filename"],
        attachment.get("mime_type"),
        md5,
        size,
        file=content,
        content_id=attachment.get("content_id"),
    )


class _LimitedWriter:
    """Writes to the spool file, hashing, and stops at the size limit."""

    def __init__(self, handle: BinaryIO, filename: str, max_bytes: int) -> None:
        self.handle, self.filename, self.max_bytes = handle, filename, max_bytes
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise AttachmentError(
                self.filename,
                f"too large: {size} bytes, the limit is {self.max_bytes} bytes",
                permanent=True,
            )

    def write(self, block: bytes) -> None:
        self.check_size(self.size + len(block))
        self.size += len(block)
        self.md5.update(block)
        self.handle.write(block)


# -- filesystem ------------------------------------------------------------------------------
def resolve_under_root(root: Path | None, given: str, filename: str) -> str:
    """The real path of ``given`` inside ``root``; anything that would leave it is refused.

    A relative path is taken from the root; an absolute path must already lie in it. The
    check is made on the fully resolved path, so ``..`` and symlinks (at any depth) that
    lead outside are caught; the file is then opened with O_NOFOLLOW.
    """
    if root is None:
        raise AttachmentError(
            filename, "filesystem attachments are not enabled on this instance", True
        )
    real_root = os.path.realpath(root)
    candidate = given if os.path.isabs(given) else os.path.join(real_root, given)
    if os.path.isabs(given) and not _inside(os.path.normpath(given), real_root):
        raise AttachmentError(filename, "absolute path outside the tenant's root", True)
    resolved = os.path.realpath(candidate)
    if not _inside(resolved, real_root):
        raise AttachmentError(filename, "path leads outside the tenant's root", True)
    return resolved


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_status(name: str, url: str, response: requests.Response) -> None:
    code = response.status_code
    if code == 200:
        return
    reason = f"{url} answered {code} {response.reason}"
    permanent = 400 <= code < 500 and code not in TEMPORARY_HTTP
    raise AttachmentError(name, reason, permanent=permanent)


def _auth_headers(auth: dict[str, Any] | None) -> dict[str, str]:
    if not auth or auth.get("method", "none") == "none":
        return {}
    if auth["method"] == "bearer":
        return {"Authorization": f"Bearer {auth.get('token') or ''}"}
    pair = f"{auth.get('user') or ''}:{auth.get('password') or ''}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
