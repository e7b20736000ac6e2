"""``mail-proxy start`` supervises its processes: a killed worker comes back and delivers,
the children die with a killed ``start``, and a second start on a data directory in use
is refused. Real processes, a real SMTP sink, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support.servers import free_port
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import ADMIN_TOKEN, make_messages, wait_until

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[-1].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (read from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {pid for pid in found if _alive(pid)}


@dataclass
class Started:
    proc: subprocess.Popen[str]
    base: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def worker_pid(self) -> int:
        """The celery worker that is a direct child of ``mail-proxy start``."""
        pids = [
            pid
            for pid in descendants(self.proc.pid)
            if _parent_of(pid) == self.proc.pid and " worker" in _cmdline(pid)
        ]
        assert len(pids) == 1, (pids, self.output())
        return pids[0]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
    env.update(MAILPROXY_ADMIN_TOKEN=ADMIN_TOKEN, MAILPROXY_SWEEP_INTERVAL="1")
    return env


def _start(data_dir: Path, port: int | None = None) -> Started:
    port = port or free_port()
    proc = subprocess.Popen(
        [MAIL_PROXY, "start", "--port", str(port), "--data-dir", str(data_dir)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = Started(proc, f"http://127.0.0.1:{port}", data_dir)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            started.lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    wait_until(lambda: _healthy(started.base) or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, started.output()
    return started


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/health", timeout=2).ok
    except requests.RequestException:
        return False


def _stop(started: Started) -> None:
    if started.proc.poll() is None:
        started.proc.send_signal(signal.SIGINT)
        try:
            started.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            started.proc.kill()
    for pid in descendants(started.proc.pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def instance(tmp_path) -> Iterator[Started]:
    started = _start(tmp_path / "data")
    try:
        yield started
    finally:
        _stop(started)


def test_a_killed_worker_is_restarted_and_delivers_what_is_posted_afterwards(instance):
    sink = SMTPSink()
    sink.start()
    try:
        admin = {"X-API-Token": ADMIN_TOKEN}
        tenant = requests.post(f"{instance.base}/tenant", json={"id": "acme"}, headers=admin)
        auth = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        account = {"id": "main", "host": "127.0.0.1", "port": sink.port, "use_tls": False}
        assert requests.post(f"{instance.base}/account", json=account, headers=auth).ok

        killed = instance.worker_pid()
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: not _alive(killed), timeout=10)

        posted = make_messages(3, prefix="AFTER-KILL")
        answer = requests.post(
            f"{instance.base}/commands/add-messages", json={"messages": posted}, headers=auth
        )
        assert answer.json()["queued"] == 3, answer.text
        received = sink.wait_for(3, timeout=60)
        assert sorted(r.message()["Subject"] for r in received) == sorted(
            m["subject"] for m in posted
        )
        assert instance.worker_pid() != killed
        wait_until(lambda: "worker (pid" in instance.output(), timeout=5)
        assert f"worker (pid {killed}) was killed by SIGKILL" in instance.output()
        assert "worker restarted" in instance.output()
    finally:
        sink.stop()


def test_the_children_of_a_killed_start_exit_within_seconds(instance):
    children = descendants(instance.proc.pid)
    assert children
    instance.proc.kill()
    instance.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.2)
    left = {pid: _cmdline(pid) for pid in children if _alive(pid)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == {}
    # The kernel dropped the data directory's lock with the process: a new start works.
    again = _start(instance.data_dir)
    _stop(again)


def test_a_second_start_on_a_data_directory_in_use_is_refused(instance):
    second = subprocess.Popen(
        [MAIL_PROXY, "start", "--port", str(free_port()), "--data-dir", str(instance.data_dir)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = second.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        _stop(Started(second, "", instance.data_dir))
        pytest.fail("a second start on the same data directory kept running")
    assert second.returncode == 1, (out, err)
    said = " ".join(err.split())  # the console wraps long lines
    assert f"{instance.data_dir} is in use by another mail-proxy start" in said
    assert f"(pid {instance.proc.pid})" in said
    assert _healthy(instance.base)  # the first one is untouched


def test_start_serves_the_api_with_gunicorn_and_stops_everything_on_sigterm(instance):
    children = descendants(instance.proc.pid)
    assert any("gunicorn" in _cmdline(pid) for pid in children), [_cmdline(p) for p in children]
    instance.proc.send_signal(signal.SIGTERM)
    assert instance.proc.wait(timeout=60) == 0, instance.output()
    assert not [pid for pid in children if _alive(pid)]
    assert "stopped." in instance.output()
