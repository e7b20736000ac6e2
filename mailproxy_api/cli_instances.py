"""Named local instances: each one lives in its own directory under the instances base
(``$MAILPROXY_HOME``, default ``~/.mailproxy/instances``), runs in the background, and is
found again by name.

``instance.json`` in that directory (mode 0600: it holds the admin token) says how to reach
it: pid, port, URL, admin token. The pid is only trusted while that process is alive and,
where /proc tells, started when the recorded one did: after a crash and a reboot the same
pid may belong to another program, which ``stop`` must never signal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from .cli_contexts import CliUsageError, write_private_json

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RECORD = "instance.json"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 40.0  # the worker's warm shutdown lets running deliveries finish


def instances_home() -> Path:
    override = os.environ.get("MAILPROXY_HOME")
    return Path(override).expanduser() if override else Path.home() / ".mailproxy" / "instances"


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left unreaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust the signal
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, /proc/PID/stat field 22), None where
    there is no /proc. A pid and its start name one process, even once pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def same_process(pid: Any, started: Any) -> bool:
    """True while the process recorded as ``pid`` (started at ``started``) still runs."""
    if not isinstance(pid, int) or not process_alive(pid):
        return False
    return started is None or process_start(pid) in (None, started)


@dataclass(frozen=True)
class LocalInstance:
    name: str
    path: Path

    @classmethod
    def named(cls, name: str) -> LocalInstance:
        if not NAME.match(name):
            raise CliUsageError(
                f"'{name}' is not an instance name: letters, digits, '.', '_' and '-', "
                "starting with a letter or digit"
            )
        return cls(name, instances_home() / name)

    @classmethod
    def existing(cls, name: str) -> LocalInstance:
        instance = cls.named(name)
        if not instance.path.is_dir():
            raise LookupError(f"no local instance named '{name}' in {instances_home()}")
        return instance

    @classmethod
    def all(cls) -> list[LocalInstance]:
        home = instances_home()
        if not home.is_dir():
            return []
        return [cls(p.name, p) for p in sorted(home.iterdir()) if (p / RECORD).is_file()]

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    def record(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.path / RECORD).read_text())
        except (OSError, ValueError):
            return {}
        return data

    def write_record(self, **changes: Any) -> None:
        write_private_json(self.path / RECORD, {**self.record(), "name": self.name, **changes})

    def running_pid(self) -> int | None:
        record = self.record()
        pid = record.get("pid")
        return pid if same_process(pid, record.get("pid_start")) else None

    def state(self) -> str:
        """running (answers /health), unresponsive (process alive, no answer) or stopped."""
        if self.running_pid() is None:
            return "stopped"
        return "running" if health(self.record().get("url", "")) else "unresponsive"

    def summary(self) -> dict[str, Any]:
        record = self.record()
        state = self.state()
        return {
            "name": self.name,
            "state": state,
            "url": record.get("url"),
            "pid": record.get("pid") if state != "stopped" else None,
            "dir": str(self.path),
        }


def health(url: str) -> bool:
    try:
        return requests.get(url.rstrip("/") + "/health", timeout=2).ok
    except requests.RequestException:
        return False


def start_in_background(instance: LocalInstance, port: int, host: str) -> dict[str, Any]:
    """Run ``mail-proxy start NAME`` as a detached process; return its record once /health
    answers. Raises RuntimeError with the end of its log if it exits or never answers."""
    if instance.running_pid() is not None:
        raise RuntimeError(
            f"instance {instance.name} is already running (pid {instance.running_pid()})"
        )
    instance.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = instance.log_dir / "server.log"
    command = [sys.executable, "-m", "mailproxy_api.cli", "start", instance.name]
    command += ["--port", str(port), "--host", host, "--background"]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            command,
            cwd=instance.path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:
        if child.poll() is not None:
            raise RuntimeError(f"instance {instance.name} exited at start:\n{_tail(log_path)}")
        record = instance.record()
        if record.get("pid") == child.pid and health(record["url"]):
            return record
        time.sleep(0.2)
    _terminate(child.pid)
    raise RuntimeError(
        f"instance {instance.name} did not answer within {START_TIMEOUT:.0f}s:\n{_tail(log_path)}"
    )


def stop_instance(instance: LocalInstance) -> bool:
    """SIGTERM and wait for the instance (API, worker, scheduler) to end; False if it was
    not running. Past the timeout it is killed."""
    pid = instance.running_pid()
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + STOP_TIMEOUT
    while process_alive(pid) and time.monotonic() < end:
        time.sleep(0.1)
    if process_alive(pid):
        _terminate(pid)
        record = instance.record()
        worker = record.get("worker_pid")
        if isinstance(worker, int) and same_process(worker, record.get("worker_pid_start")):
            _terminate(worker)
    instance.write_record(pid=None, worker_pid=None)
    return True


def delete_instance(instance: LocalInstance) -> None:
    shutil.rmtree(instance.path)


def _terminate(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            continue


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
