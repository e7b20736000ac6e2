"""How ``mail-proxy start`` keeps its processes: the API (gunicorn), a worker and the
scheduler (beat) run as children that it restarts when they die and that die with it.

- A child that exits is started again after a pause that doubles with each quick death
  (1 s up to 30 s) and starts over once it ran for a minute; each restart is logged.
- On Linux every child asks the kernel for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``): a SIGKILLed ``mail-proxy start`` leaves no orphans behind.
- The data directory is locked (``flock`` on ``mailproxy.lock``): a second start on it is
  refused. The kernel drops the lock when its holder dies, so a crash never leaves a
  stale lock behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

LOCK_FILE = "mailproxy.lock"
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long starts its backoff over
PR_SET_PDEATHSIG = 1

# Loaded before any fork: a child must not load a library between fork and exec.
_libc = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
)


class DataDirInUse(RuntimeError):
    """Another ``mail-proxy start`` holds the data directory."""


class DataDirLock:
    """An exclusive ``flock`` on the data directory's lock file, for this process's life."""

    def __init__(self, data_path: Path) -> None:
        self.path = data_path / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        try:
            _lock_exclusively(fd)
        except (BlockingIOError, PermissionError):
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUse(
                f"{self.path.parent} is in use by another mail-proxy start (pid {holder}); "
                "stop that one first, or give this one another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None


def _lock_exclusively(fd: int) -> None:
    """flock where there is one; on Windows a byte-range lock (also dropped at exit)."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` (the calling thread) ends."""

    def prepare() -> None:  # runs in the child between fork and exec
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took hold
            os._exit(1)

    return prepare


@dataclass
class Child:
    name: str
    command: list[str]
    log_path: Path
    stop_timeout: float
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    restarts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class Supervisor:
    """Starts the children, restarts those that die, stops them all in order."""

    def __init__(
        self,
        children: list[Child],
        say: Callable[[str], None],
        on_spawn: Callable[[Child], None] | None = None,
    ) -> None:
        self.children = children
        self.say = say
        self.on_spawn = on_spawn
        self.stopping = threading.Event()

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        if child._log is not None:
            child._log.close()
        child._log = open(child.log_path, "ab")  # noqa: SIM115 - kept while the child runs
        child.process = subprocess.Popen(
            child.command,
            stdin=subprocess.DEVNULL,
            stdout=child._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops them in order
            preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - only prctl and getppid
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        if self.on_spawn is not None:
            self.on_spawn(child)

    def check(self) -> None:
        """Notice children that died and start those whose pause is over (main thread only:
        the kernel's parent-death signal follows the thread that started the child)."""
        current = time.monotonic()
        for child in self.children:
            process = child.process
            if child.restart_at is None and process is not None and process.poll() is not None:
                ran = current - child.started_at
                child.quick_deaths = 0 if ran >= HEALTHY_AFTER else child.quick_deaths + 1
                pause = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, child.quick_deaths - 1))
                child.restart_at = current + pause
                self.say(
                    f"{child.name} (pid {process.pid}) {_exit_reason(process.returncode)} "
                    f"after {ran:.0f} s; restarting in {pause:g} s (see {child.log_path})"
                )
            if child.restart_at is not None and current >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
                self.say(f"{child.name} restarted (pid {child.pid}, restart {child.restarts})")

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            self.check()

    def stop(self) -> None:
        """SIGTERM each child in list order and wait for it (a worker finishes what it is
        sending); one that outlives its timeout is killed with its process group."""
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=child.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.say(f"{child.name} did not stop within {child.stop_timeout:g} s; killed")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
            if child._log is not None:
                child._log.close()
                child._log = None


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
