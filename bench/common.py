"""What the benchmarks share: the two stacks, a sink in its own process, percentiles."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.servers import (  # noqa: E402
    free_port,
    fresh_postgres_database,
    postgres_admin_url,
    redis_server_url,
    wait_port,
)
from tests.support.stack import Stack, wait_until  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"p50 {percentile(ms, 50):8.2f} ms  p95 {percentile(ms, 95):8.2f} ms  "
        f"mean {statistics.mean(ms):8.2f} ms  (n={len(ms)})"
    )


class CountingSink:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, count_file: Path) -> None:
        self.proc, self.port, self.count_file = proc, port, count_file

    def count(self) -> int:
        try:
            return int(self.count_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0


@contextmanager
def counting_sink(workdir: Path) -> Iterator[CountingSink]:
    port = free_port()
    count_file = workdir / f"sink-{port}.count"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "counting_sink.py"), str(port), str(count_file)],
        stdout=subprocess.PIPE,
    )
    try:
        wait_port(port, proc=proc)
        yield CountingSink(proc, port, count_file)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@contextmanager
def stack(kind: str, workdir: Path) -> Iterator[Stack]:
    """``embedded``: SQLite + SQLAlchemy broker; ``scale``: PostgreSQL + Redis."""
    with ExitStack() as resources:
        if kind == "embedded":
            built = Stack(workdir, f"sqlite:///{workdir / 'mailproxy.sqlite'}", None)
        else:
            admin = resources.enter_context(postgres_admin_url())
            db_url = resources.enter_context(fresh_postgres_database(admin))
            redis_url = resources.enter_context(redis_server_url())
            import redis

            redis.Redis.from_url(redis_url).flushdb()
            built = Stack(workdir, db_url, redis_url)
        try:
            yield built
        finally:
            built.stop()


@contextmanager
def http_api(built: Stack, kind: str) -> Iterator[str]:
    """The API as users run it: gunicorn at scale, the threaded server of ``mail-proxy start``
    in embedded mode. Yields its base URL."""
    port = free_port()
    env = built.env()
    if kind == "embedded":
        command = [
            sys.executable,
            "-c",
            "from werkzeug.serving import make_server; from mailproxy_api.wsgi import app; "
            f"make_server('127.0.0.1', {port}, app, threaded=True).serve_forever()",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "mailproxy_api.wsgi:app",
        ]
    proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    try:
        wait_port(port, timeout=30, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="mailproxy-bench-")


def wait_count(sink: CountingSink, target: int, timeout: float) -> float:
    """Seconds until the sink has counted ``target`` messages."""
    start = time.perf_counter()
    wait_until(lambda: sink.count() >= target, timeout, interval=0.02)
    return time.perf_counter() - start
