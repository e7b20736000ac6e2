"""Security of attachment sources: no path leaves the tenant's root, no fetch reaches a
private address the tenant is not allowed (after DNS resolution and after redirects)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os

import pytest

from mailproxy_workers.attachments import AttachmentError, address_is_forbidden
from mailproxy_workers.tenant_attachments import private_networks
from tests.support.http_files import FileServer, Route


def _file(path: str) -> dict:
    return {"filename": "a.txt", "storage_path": path, "fetch_mode": "filesystem"}


def _url(url: str) -> dict:
    return {"filename": "a.txt", "storage_path": url, "fetch_mode": "http_url"}


def _refused(fetcher, attachment, sources) -> str:
    with pytest.raises(AttachmentError) as caught:
        fetcher.fetch_all([attachment], sources)
    assert caught.value.permanent
    return str(caught.value)


@pytest.fixture
def secret_outside(tmp_path):
    secret = tmp_path / "files" / "secret.txt"
    secret.write_text("another tenant's data")
    return secret


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "./../secret.txt"])
def test_dot_dot_cannot_leave_the_root(fetcher, loopback_tenant, secret_outside, path):
    (loopback_tenant.filesystem_root / "sub").mkdir()
    assert "outside the tenant's root" in _refused(fetcher, _file(path), loopback_tenant)


def test_absolute_path_outside_the_root_is_refused(fetcher, loopback_tenant, secret_outside):
    for path in (str(secret_outside), "/etc/passwd"):
        assert "absolute path outside" in _refused(fetcher, _file(path), loopback_tenant)


def test_symlink_leading_out_of_the_root_is_refused(fetcher, loopback_tenant, secret_outside):
    root = loopback_tenant.filesystem_root
    os.symlink(secret_outside, root / "link.txt")
    os.symlink(secret_outside.parent, root / "linkdir")
    assert "outside the tenant's root" in _refused(fetcher, _file("link.txt"), loopback_tenant)
    assert "outside" in _refused(fetcher, _file("linkdir/secret.txt"), loopback_tenant)


def test_symlink_inside_the_root_is_followed(fetcher, loopback_tenant):
    root = loopback_tenant.filesystem_root
    (root / "real.txt").write_text("inside")
    os.symlink(root / "real.txt", root / "alias.txt")
    assert fetcher.fetch_all([_file("alias.txt")], loopback_tenant)[0].read() == b"inside"


def test_a_directory_is_not_an_attachment(fetcher, loopback_tenant):
    (loopback_tenant.filesystem_root / "dir").mkdir()
    assert "not a regular file" in _refused(fetcher, _file("dir"), loopback_tenant)


def test_loopback_is_refused_unless_the_tenant_is_allowed(fetcher, loopback_tenant, file_server):
    file_server.routes["/a.txt"] = Route(body=b"internal")
    strict = dataclasses.replace(loopback_tenant, private_networks=())
    reason = _refused(fetcher, _url(file_server.url("/a.txt")), strict)
    assert "refused to connect to 127.0.0.1" in reason and "not allowed" in reason
    assert file_server.requests == []  # nothing was sent to it
    assert fetcher.fetch_all([_url(file_server.url("/a.txt"))], loopback_tenant)[0].read()


def test_a_name_is_checked_by_the_address_it_resolves_to(fetcher, loopback_tenant, file_server):
    file_server.routes["/a.txt"] = Route(body=b"internal")
    strict = dataclasses.replace(loopback_tenant, private_networks=())
    url = f"http://localhost:{file_server.port}/a.txt"
    assert "refused to connect to" in _refused(fetcher, _url(url), strict)
    assert file_server.requests == []


def test_a_redirect_to_a_forbidden_address_is_refused(fetcher, loopback_tenant, file_server):
    """The tenant may reach 127.0.0.1 only; a redirect to 127.0.0.2 is not followed."""
    other = FileServer(host="127.0.0.2").start()
    try:
        other.routes["/secret"] = Route(body=b"metadata")
        file_server.routes["/go"] = Route(status=302, headers={"Location": other.url("/secret")})
        file_server.routes["/stay"] = Route(status=302, headers={"Location": "/a.txt"})
        file_server.routes["/a.txt"] = Route(body=b"fine")
        only_one = dataclasses.replace(
            loopback_tenant, private_networks=(ipaddress.ip_network("127.0.0.1/32"),)
        )
        assert "refused to connect to 127.0.0.2" in _refused(
            fetcher, _url(file_server.url("/go")), only_one
        )
        assert other.requests == []
        assert fetcher.fetch_all([_url(file_server.url("/stay"))], only_one)[0].read() == b"fine"
    finally:
        other.stop()


def test_redirect_to_another_scheme_and_redirect_loops_are_refused(
    fetcher, loopback_tenant, file_server
):
    file_server.routes["/file"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    file_server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    assert "scheme" in _refused(fetcher, _url(file_server.url("/file")), loopback_tenant)
    assert "too many redirects" in _refused(
        fetcher, _url(file_server.url("/loop")), loopback_tenant
    )


def test_endpoint_url_is_held_to_the_same_address_rule(fetcher, loopback_tenant, file_server):
    file_server.endpoint_files["doc"] = b"x"
    strict = dataclasses.replace(
        loopback_tenant, private_networks=(), endpoint_url=file_server.url("/attachments")
    )
    reason = _refused(
        fetcher, {"filename": "a", "storage_path": "doc", "fetch_mode": "endpoint"}, strict
    )
    assert "refused to connect to 127.0.0.1" in reason


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_forbidden(address):
    assert address_is_forbidden(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert not address_is_forbidden(address)


def test_the_setting_allows_all_or_one_network_per_tenant():
    entries = ["acme", "shop=10.1.0.0/16", "shop=127.0.0.1"]
    assert len(private_networks("acme", entries)) == 2  # every IPv4 and IPv6 address
    assert private_networks("shop", entries) == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("127.0.0.1/32"),
    )
    assert private_networks("other", entries) == ()
    assert not address_is_forbidden("10.1.2.3", private_networks("shop", entries))
    assert address_is_forbidden("10.2.0.1", private_networks("shop", entries))
