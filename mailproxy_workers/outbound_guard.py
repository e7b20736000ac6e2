"""The one guard on every outbound HTTP request a tenant can aim at an address.

A tenant chooses URLs (``http_url`` attachments, its ``client_base_url`` for endpoint
attachments and delivery reports). Without a guard, a tenant could make the worker reach
the loopback interface, the cloud metadata service or a private network. So every such
request goes through ``guarded_session``: each connection resolves the host name itself,
checks every address the name resolves to, and connects only to a checked address; each
redirect opens a new connection and is checked the same way. A loopback, link-local,
private or otherwise non-public address is refused unless the operator allowed that tenant
that network (``MAILPROXY_PRIVATE_NETWORKS_ALLOWED``). Proxies from the environment are
ignored: they would hide the address really reached.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection

MAX_REDIRECTS = 5
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("0.0.0.0/0"),
    ipaddress.ip_network("::/0"),
)
EVERY_TENANT = "*"


class ForbiddenAddress(OSError):
    """The connection would reach an address this tenant may not reach."""


def address_is_forbidden(address: str, allowed: tuple[IPNetwork, ...] = ()) -> bool:
    """True for loopback, link-local, private and other non-public addresses, unless the
    address lies in one of the ``allowed`` networks."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return False
    return not any(ip.version == net.version and ip in net for net in allowed)


def tenant_private_networks(tenant_id: str, entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The non-public networks the operator lets this tenant reach.

    Entries: ``acme`` (every non-public address), ``acme=10.1.0.0/16`` (that network),
    ``*=127.0.0.0/8`` (that network, for every tenant)."""
    networks: list[IPNetwork] = []
    for entry in entries:
        name, _, network = entry.partition("=")
        if name.strip() not in (tenant_id, EVERY_TENANT):
            continue
        if not network.strip():
            return ALL_NETWORKS
        networks.append(ipaddress.ip_network(network.strip(), strict=False))
    return tuple(networks)


def _refusal(address: str, host: str) -> ForbiddenAddress:
    named = "" if host == address else f" ({host})"
    return ForbiddenAddress(
        f"refused to connect to {address}{named}: loopback, link-local and private "
        "addresses are not allowed for this tenant (see MAILPROXY_PRIVATE_NETWORKS_ALLOWED)"
    )


def checked_addresses(host: str, port: int, allowed: tuple[IPNetwork, ...]) -> list[str]:
    """Every address ``host`` resolves to, after checking each one: a name that resolves
    to one forbidden address is refused whole (the resolver's order must not matter)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if address_is_forbidden(address, allowed):
            raise _refusal(address, host)
    return addresses


def _connect(conn: HTTPConnection, allowed: tuple[IPNetwork, ...]) -> socket.socket:
    """urllib3's ``_new_conn``, connecting only to addresses that passed the check."""
    host = conn._dns_host  # noqa: SLF001 - the name urllib3 itself resolves
    port = conn.port or conn.default_port
    try:
        addresses = checked_addresses(host, port, allowed)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    last: OSError | None = None
    for address in addresses:
        try:
            return connection.create_connection(
                (address, port),
                conn.timeout,  # type: ignore[arg-type]
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
            ) from exc
        except OSError as exc:
            last = exc
    raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


class _GuardedHTTPConnection(HTTPConnection):
    allowed: tuple[IPNetwork, ...] = ()

    def _new_conn(self) -> socket.socket:
        return _connect(self, self.allowed)


class _GuardedHTTPSConnection(HTTPSConnection):
    allowed: tuple[IPNetwork, ...] = ()

    def _new_conn(self) -> socket.socket:
        return _connect(self, self.allowed)


class _GuardedAdapter(HTTPAdapter):
    """Opens every connection (each redirect opens its own) through the address check."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        self.allowed = allowed
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        allow = self.allowed
        http_conn = type("HTTPConn", (_GuardedHTTPConnection,), {"allowed": allow})
        https_conn = type("HTTPSConn", (_GuardedHTTPSConnection,), {"allowed": allow})
        http_pool = type("HTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
        https_pool = type("HTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}


def guarded_session(allowed: tuple[IPNetwork, ...]) -> requests.Session:
    """A requests session whose every connection passes the address check."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: it would hide the real peer
    session.max_redirects = MAX_REDIRECTS
    adapter = _GuardedAdapter(allowed)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def find_forbidden(exc: BaseException) -> ForbiddenAddress | None:
    """urllib3 wraps what a connection raised several times; find the refusal inside."""
    stack: list[Any] = [exc]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ForbiddenAddress):
            return item
        stack += [*item.args, getattr(item, "reason", None), item.__cause__, item.__context__]
    return None
