"""Two-tier cache of attachment content keyed by its MD5: memory (bounded LRU) then disk.

Content enters only after its MD5 was computed from the bytes themselves, so a hit is
always the content the key names. The disk tier is a directory of files named by MD5,
written through a temporary file and an atomic rename: several worker processes may share
it. Beyond its byte budget the files least recently used (by modification time, touched on
every hit) are removed; a reader holding an open file keeps its content even then.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MD5_NAME = re.compile(r"^[0-9a-f]{32}$")
SPOOL_PREFIX = ".spool-"


@dataclass
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0

    @property
    def lookups(self) -> int:
        return self.memory_hits + self.disk_hits + self.misses

    def hit_rate(self) -> float:
        return (self.memory_hits + self.disk_hits) / self.lookups if self.lookups else 0.0


class AttachmentCache:
    """Thread-safe; one per worker process."""

    def __init__(
        self,
        directory: Path,
        memory_bytes: int,
        memory_item_bytes: int,
        disk_bytes: int,
        stale_spool_seconds: float = 3600.0,
    ) -> None:
        self.directory = directory
        self.memory_bytes = memory_bytes
        self.memory_item_bytes = memory_item_bytes
        self.disk_bytes = disk_bytes
        self.stats = CacheStats()
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_used = 0
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self.remove_stale_spools(stale_spool_seconds)

    def remove_stale_spools(self, older_than: float) -> int:
        """Delete spool files no fetch can still be writing: a worker killed mid-fetch
        leaves its spool behind, and nothing else would ever remove it. ``older_than`` is
        well above the fetch time limit, so a live fetch's file is never touched."""
        removed = 0
        limit = time.time() - older_than
        with os.scandir(self.directory) as listing:
            for entry in listing:
                if not entry.name.startswith(SPOOL_PREFIX):
                    continue
                try:
                    if entry.stat().st_mtime < limit:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue  # adopted or removed by its worker meanwhile
        return removed

    # -- lookups ---------------------------------------------------------------------------
    def get(self, md5: str) -> bytes | BinaryIO | None:
        """The content (bytes from memory, or an open file from disk), or None."""
        md5 = md5.lower()
        with self._lock:
            data = self._memory.get(md5)
            if data is not None:
                self._memory.move_to_end(md5)
                self.stats.memory_hits += 1
                return data
        handle = self._open_disk(md5)
        with self._lock:
            if handle is None:
                self.stats.misses += 1
                return None
            self.stats.disk_hits += 1
        if os.fstat(handle.fileno()).st_size <= self.memory_item_bytes:
            data = handle.read()
            handle.close()
            self.put_bytes(md5, data)
            return data
        return handle

    def _open_disk(self, md5: str) -> BinaryIO | None:
        if not MD5_NAME.match(md5) or self.disk_bytes <= 0:
            return None
        path = self.directory / md5
        try:
            handle = open(path, "rb")  # noqa: SIM115 - the caller owns the handle
        except FileNotFoundError:
            return None
        try:
            os.utime(path)
        except OSError:
            pass  # evicted meanwhile: the open handle still reads the content
        return handle

    # -- filling ---------------------------------------------------------------------------
    def put_bytes(self, md5: str, data: bytes) -> None:
        if len(data) > self.memory_item_bytes or len(data) > self.memory_bytes:
            return
        with self._lock:
            if md5 in self._memory:
                self._memory.move_to_end(md5)
                return
            self._memory[md5] = data
            self._memory_used += len(data)
            while self._memory_used > self.memory_bytes:
                _, dropped = self._memory.popitem(last=False)
                self._memory_used -= len(dropped)

    def spool_file(self) -> tuple[int, Path]:
        """A new temporary file in the cache directory (same filesystem: renamed into place)."""
        fd, name = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=self.directory)
        return fd, Path(name)

    def adopt_file(self, md5: str, spooled: Path, size: int) -> None:
        """Move a spooled file whose MD5 is known into the disk tier (or delete it)."""
        if self.disk_bytes <= 0 or size > self.disk_bytes:
            spooled.unlink(missing_ok=True)
            return
        os.replace(spooled, self.directory / md5)
        self._evict_disk()

    def _evict_disk(self) -> None:
        entries = []
        total = 0
        with os.scandir(self.directory) as listing:
            for entry in listing:
                if not MD5_NAME.match(entry.name):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                entries.append((stat.st_mtime, entry.path, stat.st_size))
                total += stat.st_size
        if total <= self.disk_bytes:
            return
        for _mtime, path, size in sorted(entries):
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            total -= size
            if total <= self.disk_bytes:
                return

    def memory_keys(self) -> list[str]:
        with self._lock:
            return list(self._memory)
