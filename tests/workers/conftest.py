"""Fixtures of the worker tests: an HTTP file server on loopback and an attachment fetcher."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mailproxy_models.accounts import SmtpEndpoint
from mailproxy_workers.attachment_cache import AttachmentCache
from mailproxy_workers.attachments import (
    ALL_NETWORKS,
    AttachmentFetcher,
    FetchLimits,
    TenantSources,
)
from tests.support.http_files import FileServer


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer().start()
    try:
        yield server
    finally:
        server.stop()


def make_fetcher(tmp_path, **limits) -> AttachmentFetcher:
    values = {"timeout": 5.0, "max_bytes": 1024 * 1024, "concurrency": 3}
    values.update(limits)
    cache = AttachmentCache(
        tmp_path / "cache", memory_bytes=4096, memory_item_bytes=1024, disk_bytes=10 * 1024 * 1024
    )
    return AttachmentFetcher(FetchLimits(**values), cache)


@pytest.fixture
def fetcher(tmp_path) -> AttachmentFetcher:
    return make_fetcher(tmp_path)


@pytest.fixture
def loopback_tenant(tmp_path) -> TenantSources:
    """A tenant allowed to fetch from private addresses (the test servers are on loopback)."""
    root = tmp_path / "files" / "acme"
    root.mkdir(parents=True)
    return TenantSources("acme", filesystem_root=root, private_networks=ALL_NETWORKS)


def loopback_endpoint(port: int, **overrides: Any) -> SmtpEndpoint:
    """An account's connection settings for an SMTP server on loopback, plain by default."""
    values: dict[str, Any] = dict(
        tenant_id="acme",
        account_id="main",
        host="127.0.0.1",
        port=port,
        user=None,
        password=None,
        use_tls=False,
        ttl=300,
    )
    values.update(overrides)
    return SmtpEndpoint(**values)
