"""The two-tier attachment cache keyed by content MD5: memory LRU, then disk, then fetch."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from mailproxy_workers.attachment_cache import AttachmentCache
from mailproxy_workers.attachments import AttachmentError
from tests.support.http_files import Route


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _url(server, path: str, **extra) -> dict:
    return {
        "filename": "a.bin",
        "storage_path": server.url(path),
        "fetch_mode": "http_url",
        **extra,
    }


def test_declared_md5_found_in_cache_is_used_without_fetching(
    fetcher, loopback_tenant, file_server
):
    file_server.routes["/a"] = Route(body=b"small content")
    first = fetcher.fetch_all([_url(file_server, "/a")], loopback_tenant)[0]
    assert first.md5 == md5(b"small content")
    again = fetcher.fetch_all(
        [_url(file_server, "/a", content_md5=md5(b"small content"))], loopback_tenant
    )
    assert again[0].read() == b"small content"
    assert len(file_server.requests) == 1  # the second one came from the cache
    assert fetcher.cache.stats.memory_hits == 1


def test_md5_marker_in_the_filename_works_like_content_md5(fetcher, loopback_tenant, file_server):
    """The API turns ``name{MD5:...}.pdf`` into content_md5; the fetcher sees the same key."""
    from mailproxy_models.message_validation import MessageLimits, _attachment

    body = b"marked"
    file_server.routes["/m"] = Route(body=body)
    fetcher.fetch_all([_url(file_server, "/m")], loopback_tenant)
    stored = _attachment(
        0,
        {"filename": f"doc{{MD5:{md5(body).upper()}}}.pdf", "storage_path": file_server.url("/m")},
        MessageLimits(max_recipients=500, max_headers=50),
    )
    assert stored["filename"] == "doc.pdf" and stored["content_md5"] == md5(body)
    assert fetcher.fetch_all([stored], loopback_tenant)[0].read() == body
    assert len(file_server.requests) == 1


def test_content_not_matching_its_declared_md5_is_an_error_and_not_cached(
    fetcher, loopback_tenant, file_server
):
    file_server.routes["/x"] = Route(body=b"tampered")
    declared = md5(b"original")
    with pytest.raises(AttachmentError) as caught:
        fetcher.fetch_all([_url(file_server, "/x", content_md5=declared)], loopback_tenant)
    assert caught.value.permanent and "does not match its declared MD5" in str(caught.value)
    assert fetcher.cache.get(declared) is None
    assert fetcher.cache.get(md5(b"tampered")) is None
    assert not [p for p in fetcher.cache.directory.iterdir() if p.name.startswith(".spool")]


def test_large_content_is_cached_on_disk_and_read_from_there(fetcher, loopback_tenant, file_server):
    big = os.urandom(50_000)  # over the fixture's 1 KiB memory item limit
    file_server.routes["/big"] = Route(body=big)
    got = fetcher.fetch_all([_url(file_server, "/big")], loopback_tenant)[0]
    assert got.content is None and got.file is not None  # not held in memory
    got.close()
    assert (fetcher.cache.directory / md5(big)).read_bytes() == big
    again = fetcher.fetch_all([_url(file_server, "/big", content_md5=md5(big))], loopback_tenant)
    assert again[0].read() == big and fetcher.cache.stats.disk_hits == 1
    assert len(file_server.requests) == 1


def test_disk_hit_of_a_small_file_is_promoted_to_memory(tmp_path):
    cache = AttachmentCache(tmp_path, memory_bytes=1000, memory_item_bytes=100, disk_bytes=10_000)
    (tmp_path / md5(b"tiny")).write_bytes(b"tiny")
    assert cache.get(md5(b"tiny")) == b"tiny"
    assert cache.get(md5(b"tiny")) == b"tiny"
    assert (cache.stats.disk_hits, cache.stats.memory_hits) == (1, 1)


def test_memory_tier_is_a_bounded_lru(tmp_path):
    cache = AttachmentCache(tmp_path, memory_bytes=300, memory_item_bytes=100, disk_bytes=0)
    items = {name: name.encode() * 100 for name in "abc"}  # 100 bytes each
    for name, data in items.items():
        cache.put_bytes(md5(data), data)
    cache.get(md5(items["a"]))  # a is now the most recently used
    d = b"d" * 100
    cache.put_bytes(md5(d), d)  # over 300 bytes: the least recently used (b) goes
    assert cache.memory_keys() == [md5(items["c"]), md5(items["a"]), md5(d)]
    cache.put_bytes(md5(b"e" * 101), b"e" * 101)  # over the item limit: never kept in memory
    assert md5(b"e" * 101) not in cache.memory_keys()


def test_disk_tier_evicts_the_oldest_files_beyond_its_budget(tmp_path):
    cache = AttachmentCache(tmp_path, memory_bytes=0, memory_item_bytes=0, disk_bytes=2500)
    names = []
    for i in range(3):
        data = bytes([i]) * 1000
        fd, spool = cache.spool_file()
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        past = time.time() - 100 + i
        os.utime(spool, (past, past))
        cache.adopt_file(md5(data), spool, len(data))
        names.append(md5(data))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])


def test_an_open_cached_file_survives_its_eviction(tmp_path):
    cache = AttachmentCache(tmp_path, memory_bytes=0, memory_item_bytes=0, disk_bytes=1500)
    data = b"k" * 1000
    (tmp_path / md5(data)).write_bytes(data)
    handle = cache.get(md5(data))
    os.unlink(tmp_path / md5(data))  # evicted by another process meanwhile
    assert handle.read() == data
    handle.close()


def test_hit_rate_counts_both_tiers(tmp_path):
    cache = AttachmentCache(tmp_path, memory_bytes=1000, memory_item_bytes=100, disk_bytes=1000)
    cache.put_bytes(md5(b"m"), b"m")
    cache.get(md5(b"m"))
    cache.get(md5(b"absent"))
    assert cache.stats.hit_rate() == 0.5


def test_spool_files_left_by_a_killed_worker_are_removed_when_a_worker_starts(tmp_path):
    """A fetch writes its spool within its time limit; an older one has no writer left."""
    left_behind, in_use, cached = (tmp_path / name for name in (".spool-a", ".spool-b", "0" * 32))
    for path in (left_behind, in_use, cached):
        path.write_bytes(b"x" * 10)
    two_hours_ago = time.time() - 7200
    os.utime(left_behind, (two_hours_ago, two_hours_ago))
    os.utime(cached, (two_hours_ago, two_hours_ago))
    AttachmentCache(tmp_path, 0, 0, 10_000, stale_spool_seconds=3600)
    assert not left_behind.exists()
    assert in_use.exists() and cached.exists()  # a live fetch; cached content stays
