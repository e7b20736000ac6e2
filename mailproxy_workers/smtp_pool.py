"""SMTP connections reused across messages: one per account per worker thread.

A connection is replaced after its TTL (the account's ``ttl``) or once it has carried the
account's ``batch_size`` messages, and dropped on any error, so a broken or half-closed
socket never carries the next message. Credentials are sent only over TLS (SMTPS, or a
STARTTLS that succeeded) unless the account allows otherwise.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mailproxy_models.accounts import SmtpEndpoint


class InsecureAuthRefused(smtplib.SMTPException):
    """The account has credentials, the connection has no TLS, and the account does not
    allow sending them in clear: nothing was sent to the server."""

    def __init__(self, endpoint: SmtpEndpoint) -> None:
        super().__init__(
            f"credentials of account '{endpoint.account_id}' not sent: the connection to "
            f"{endpoint.host}:{endpoint.port} is not encrypted (no SMTPS, and the server "
            "offers no STARTTLS or use_tls is false); use a TLS port or STARTTLS, or set "
            "allow_insecure_auth on the account"
        )


@dataclass
class PooledConnection:
    smtp: smtplib.SMTP
    opened_at: float
    uses: int = 0
    broken: bool = False  # set when the server ended the session; dropped after use


class SmtpConnectionPool:
    def __init__(self, timeout: float, ca_file: str | None = None) -> None:
        self.timeout = timeout
        self.ca_file = ca_file
        self._local = threading.local()
        self.helo_name = socket.gethostname()  # getfqdn() may wait on DNS

    def _connections(self) -> dict[SmtpEndpoint, PooledConnection]:
        if not hasattr(self._local, "connections"):
            self._local.connections = {}
        return self._local.connections  # type: ignore[no-any-return]

    @contextmanager
    def connection(self, endpoint: SmtpEndpoint) -> Iterator[PooledConnection]:
        """A live connection for the endpoint; on any exception it is closed and forgotten."""
        connections = self._connections()
        pooled = connections.get(endpoint)
        if pooled is not None and time.monotonic() - pooled.opened_at > endpoint.ttl:
            self.drop(endpoint)
            pooled = None
        if pooled is None:
            pooled = PooledConnection(self._open(endpoint), time.monotonic())
            connections[endpoint] = pooled
        try:
            yield pooled
        except BaseException:
            self.drop(endpoint)
            raise
        pooled.uses += 1
        # A session that carried the account's batch_size messages ends now (QUIT).
        if pooled.broken or (endpoint.batch_size and pooled.uses >= endpoint.batch_size):
            self.drop(endpoint)

    def drop(self, endpoint: SmtpEndpoint) -> None:
        pooled = self._connections().pop(endpoint, None)
        if pooled is not None:
            _close_quietly(pooled.smtp)

    def close_all(self) -> None:
        for endpoint in list(self._connections()):
            self.drop(endpoint)

    def _tls_context(self, endpoint: SmtpEndpoint) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not endpoint.tls_verify:  # the account's explicit, visible opt-out
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _open(self, endpoint: SmtpEndpoint) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if endpoint.use_tls is True:
            smtp = smtplib.SMTP_SSL(
                endpoint.host,
                endpoint.port,
                local_hostname=self.helo_name,
                timeout=self.timeout,
                context=self._tls_context(endpoint),
            )
        else:
            smtp = smtplib.SMTP(
                endpoint.host, endpoint.port, local_hostname=self.helo_name, timeout=self.timeout
            )
        try:
            smtp.ehlo()
            if endpoint.use_tls is None and smtp.has_extn("starttls"):
                smtp.starttls(context=self._tls_context(endpoint))
                smtp.ehlo()
            if endpoint.user:
                if not isinstance(smtp.sock, ssl.SSLSocket) and not endpoint.allow_insecure_auth:
                    raise InsecureAuthRefused(endpoint)
                smtp.login(endpoint.user, endpoint.password or "")
        except BaseException:
            _close_quietly(smtp)
            raise
        return smtp


def _close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
