"""Fixtures shared by the whole suite: real servers, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import (
    RabbitMQProcess,
    fresh_postgres_database,
    postgres_admin_url,
    redis_server_url,
)
from tests.support.smtp_sink import SMTPSink


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    with postgres_admin_url() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """SQLAlchemy URL of an empty PostgreSQL database of this test's own."""
    with fresh_postgres_database(postgres_admin) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mailproxy.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    with redis_server_url() as url:
        yield url


@pytest.fixture(scope="session")
def rabbitmq_node() -> Iterator[RabbitMQProcess]:
    """A RabbitMQ node of the suite's own, started once (it takes seconds): tests that stop
    it start it again."""
    node = RabbitMQProcess().start()
    try:
        yield node
    finally:
        node.cleanup()


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    """An aiosmtpd server on loopback that records every message it accepts."""
    sink = SMTPSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """URL of a moto S3 server shared by the session (tests use their own buckets)."""
    from tests.support.storage_servers import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """URL of a gcp-storage-emulator shared by the session (tests use their own buckets)."""
    from tests.support.storage_servers import gcs_emulator

    with gcs_emulator() as url:
        yield url


@pytest.fixture(scope="session")
def azure_server() -> Iterator[str]:
    """Connection string of an Azurite blob server shared by the session."""
    from tests.support.storage_servers import azurite

    with azurite() as connection_string:
        yield connection_string


@pytest.fixture(scope="session")
def dovecot() -> Iterator[object]:
    """A real Dovecot IMAP server on loopback (Debian's dovecot-imapd; tests/run.sh installs
    it). Users: bounce, pec and other, password "secret"; each test uses its own folders."""
    from tests.support.dovecot_server import Dovecot

    server = Dovecot(users={"bounce": "secret", "pec": "secret", "other": "secret"})
    server.start()
    try:
        yield server
    finally:
        server.stop()
