"""Real servers for the suite: PostgreSQL and Redis, used when given, otherwise started here.

``MAILPROXY_TEST_DATABASE_URL`` (an admin URL of a PostgreSQL server) and
``MAILPROXY_TEST_REDIS_URL`` point the suite at running servers. Without them it starts its
own: PostgreSQL from the ``pgserver`` package, Redis from the ``redis-server`` binary. A
missing server is an error that names the install command, never a skip.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not ready after {timeout}s")


@contextmanager
def postgres_admin_url() -> Iterator[str]:
    """A SQLAlchemy URL with the right to create databases."""
    given = os.environ.get("MAILPROXY_TEST_DATABASE_URL")
    if given:
        yield given
        return
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError(
            "PostgreSQL needed: set MAILPROXY_TEST_DATABASE_URL or pip install pgserver"
        ) from exc
    data_dir = tempfile.mkdtemp(prefix="mp-pg-")
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        server.cleanup()
        # pgserver also registers its cleanup to run at exit, where it only logs (the server
        # is stopped); by then pytest has closed the streams and the log call prints a
        # "--- Logging error ---" traceback.
        atexit.unregister(server._cleanup)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """Create an empty database for one test (module), drop it afterwards."""
    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextmanager
def redis_server_url() -> Iterator[str]:
    """A Redis URL (db 0) that this run may flush."""
    given = os.environ.get("MAILPROXY_TEST_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "Redis needed: set MAILPROXY_TEST_REDIS_URL or install the server "
            "(apt-get install -y redis-server)"
        )
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class RedisProcess:
    """A Redis server of the test's own, on a fixed port, that it may stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("the Redis server binary is needed: apt-get install -y redis-server")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, preexec_fn: Callable[[], Any] | None = None) -> RedisProcess:
        """Start the server; ``preexec_fn`` runs in the child before it executes."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=preexec_fn,
        )
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class RabbitMQProcess:
    """A private RabbitMQ node (Debian's rabbitmq-server run as a plain process) on loopback:
    its own node name, ports, data and logs, so it never meets another node on the machine.
    It can be stopped and started again on the same port with the same data."""

    def __init__(self) -> None:
        if not os.path.exists(RABBITMQ_SERVER):
            raise RuntimeError(
                "RabbitMQ needed: set MAILPROXY_TEST_AMQP_URL or install the server "
                "(apt-get install -y rabbitmq-server)"
            )
        self.port = free_port()
        self.dist_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mp-rabbitmq-")
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.proc: subprocess.Popen[bytes] | None = None
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as plugins:
            plugins.write("[].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as conf:
            conf.write("loopback_users = none\n")  # guest may log in (over loopback only)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        port = self.dist_port
        dist = f"-kernel inet_dist_listen_min {port} inet_dist_listen_max {port}"
        env.update(
            RABBITMQ_NODENAME=f"mp{self.port}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
            RABBITMQ_SERVER_START_ARGS=dist,
        )
        return env

    def start(self) -> RabbitMQProcess:
        self.proc = subprocess.Popen(
            [RABBITMQ_SERVER],
            env=self._env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port, timeout=120, proc=self.proc)
        return self

    def stop(self) -> None:
        """Stop the node (its process group: the script and the Erlang VM it started)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        end = time.monotonic() + 30
        while time.monotonic() < end:  # the port is free again once the VM has exited
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                time.sleep(0.1)
            except OSError:
                return

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def purge_amqp_queues(url: str, names: list[str]) -> None:
    """Empty the named queues of a RabbitMQ shared by the session (missing ones are fine):
    a test starts without the wake-ups an earlier test left."""
    from kombu import Connection

    with Connection(url) as conn:
        for name in names:
            channel = conn.channel()
            try:
                channel.queue_purge(name)
            except conn.channel_errors:
                pass  # not declared yet
            finally:
                try:
                    channel.close()
                except conn.channel_errors:
                    pass
