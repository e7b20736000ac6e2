"""Soak: a steady load on the scale stack for a long time, with faults, then the bars.

    .venv/bin/python bench/soak.py [--minutes 60] [--rate 100] [--fault-every 600]

PostgreSQL (a database of its own on --postgres, created and dropped here) and a Redis
server of its own on a free loopback port; 2 ``celery worker`` processes, one beat, the API
under gunicorn; SMTP servers in their own processes (bench/soak_sink.py). Offered load:
--rate messages a second, 90% to recipients the server accepts, 5% answered 451 once then
accepted, 3% answered 550, 2% through an account on a slow server.

Every --fault-every seconds one fault, in rotation: SIGKILL a worker (and start a new one),
restart Redis, terminate the app's PostgreSQL connections, stop the SMTP server for
min(60 s, half the interval). A line a minute: delivered per second, add-messages p99, RSS
of each process, database size, queue depth. At the end the bars: messages lost (0), sent
without a 250 (0), duplicates at the sink (at most the messages in flight at the SIGKILLs),
throughput of the last 10 minutes against the first 10 (>= 90%) and RSS growth of every
process (<= 10%); the last two only on runs of 30 minutes or more. Exit code 1 if a bar
fails.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mailproxy_api.supervisor import die_with_parent  # noqa: E402
from tests.support.servers import RedisProcess, free_port, wait_port  # noqa: E402

ADMIN_TOKEN = "soak-admin-token-0123456789"
WORKER_THREADS = 4
SLOW_DELAY = 1.0
FAULTS = ("kill-worker", "restart-redis", "terminate-postgres", "stop-smtp")


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB."""
    total = 0
    for member in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children[int(stat.rsplit(")", 1)[-1].split()[1])].append(int(entry.name))
    found, frontier = [], [root]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        found += frontier
    return found


def _last_error(log: Path) -> str:
    """The last CRITICAL or ERROR line of a log, shortened."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    found = [line for line in lines if "CRITICAL/" in line] or [
        line for line in lines if "ERROR/" in line
    ]
    return (found[-1] if found else (lines[-1] if lines else ""))[-160:]


@dataclass
class Proc:
    role: str
    command: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    rss_first: float | None = None
    started: float = 0.0

    def start(self) -> Proc:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),
            )
        self.started, self.rss_first = time.monotonic(), None
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class Load:
    accepted: dict[str, str] = field(default_factory=dict)  # soak id -> kind
    refused_calls: int = 0
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Redis(RedisProcess):
    """A Redis server of the soak's own that dies with the soak, however the soak ends."""

    def start(self, preexec_fn: Any = None) -> Redis:
        super().start(preexec_fn or die_with_parent(os.getpid()))
        return self


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        self.dbname = f"mp_soak_{uuid.uuid4().hex[:10]}"
        self.db_url = make_url(args.postgres).set(database=self.dbname)
        self.redis = Redis()
        self.sink_log = workdir / "sink.log"
        self.sink_port, self.slow_port, self.api_port = free_port(), free_port(), free_port()
        self.procs: dict[str, Proc] = {}
        self.load = Load()
        self.stop_load = threading.Event()
        self.in_flight_at_kills = 0
        self.killed_workers = 0
        self.minute_delivered: list[int] = []
        self.unexpected_exits: list[str] = []
        # Every process is started from the main thread: the kernel's parent-death signal
        # follows the thread that started a child.
        self.sink_back_at: float | None = None

    # -- stack ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
        env.update(
            MAILPROXY_DATABASE_URL=self.db_url.render_as_string(hide_password=False),
            MAILPROXY_BROKER_URL=self.redis.url,
            MAILPROXY_ADMIN_TOKEN=ADMIN_TOKEN,
            MAILPROXY_DATA_DIR=str(self.workdir / "data"),
            MAILPROXY_SWEEP_INTERVAL="2",
            MAILPROXY_RETRY_SCHEDULE="5,10,20,40,80",
            MAILPROXY_LEASE_SECONDS="60",
            MAILPROXY_SMTP_TIMEOUT="10",
            MAILPROXY_LOG_LEVEL="WARNING",
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "prometheus"),
            PYTHONPATH=str(REPO),
        )
        return env

    def proc(self, role: str, command: list[str]) -> Proc:
        made = Proc(role, command, self.workdir / f"{role}.log", self.env()).start()
        self.procs[role] = made
        return made

    def worker(self, role: str) -> Proc:
        return self.proc(
            role,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mailproxy_workers",
                "worker",
                "--pool=threads",
                f"--concurrency={WORKER_THREADS}",
                "--loglevel=WARNING",
                "-n",
                f"{role}-{int(time.time())}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
        )

    def sink(self, role: str, port: int, delay: float = 0.0) -> Proc:
        command = [
            sys.executable,
            str(REPO / "bench" / "soak_sink.py"),
            str(port),
            str(self.sink_log),
            "--delay",
            str(delay),
        ]
        made = self.proc(role, command)
        wait_port(port, proc=made.popen)
        return made

    def up(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.dbname}"'))
        self.redis.start()
        (self.workdir / "data").mkdir()
        (self.workdir / "prometheus").mkdir()
        subprocess.run(
            [sys.executable, "-m", "mailproxy_api.cli", "db", "upgrade"],
            cwd=REPO,
            env=self.env(),
            check=True,
            capture_output=True,
        )
        self.app_db = sa.create_engine(self.db_url, pool_pre_ping=True)
        self.sink("sink", self.sink_port)
        self.sink("slow-sink", self.slow_port, SLOW_DELAY)
        self.worker("worker-1")
        self.worker("worker-2")
        self.proc(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mailproxy_workers",
                "beat",
                f"--schedule={self.workdir / 'beat-schedule'}",
                "--loglevel=WARNING",
            ],
        )
        api = self.proc(
            "api",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "python:mailproxy_api.gunicorn_conf",
                "--workers=2",
                "--worker-class=gthread",
                "--threads=4",
                f"--bind=127.0.0.1:{self.api_port}",
                "mailproxy_api.wsgi:app",
            ],
        )
        wait_port(self.api_port, timeout=60, proc=api.popen)
        base = f"http://127.0.0.1:{self.api_port}"
        admin = {"X-API-Token": ADMIN_TOKEN}
        tenant = requests.post(f"{base}/tenant", json={"id": "soak"}, headers=admin, timeout=30)
        tenant.raise_for_status()
        self.auth = {"Authorization": f"Bearer {tenant.json()['api_key']}"}
        for account, port in (("main", self.sink_port), ("slow", self.slow_port)):
            body = {"id": account, "host": "127.0.0.1", "port": port, "use_tls": False}
            requests.post(f"{base}/account", json=body, headers=self.auth, timeout=30)
        self.base = base

    def down(self) -> None:
        for proc in self.procs.values():
            proc.stop(timeout=30)
        self.redis.stop()
        self.app_db.dispose()
        with self.admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.dbname},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.dbname}"'))
        self.admin.dispose()

    # -- load ----------------------------------------------------------------------------
    def offer(self) -> None:
        """--rate messages a second, in 10 calls a second, until told to stop."""
        per_call = max(1, round(self.args.rate / 10))
        interval = per_call / self.args.rate
        rng = random.Random(7)
        number, next_at = 0, time.monotonic()
        session = requests.Session()
        while not self.stop_load.is_set():
            batch, kinds = [], {}
            for _ in range(per_call):
                number += 1
                soak_id = f"soak-{number:08d}"
                kind = rng.choices(("ok", "tempfail", "reject", "slow"), (90, 5, 3, 2))[0]
                local = {"ok": "ok", "tempfail": "tempfail", "reject": "reject", "slow": "ok"}
                batch.append(
                    {
                        "id": soak_id,
                        "account_id": "slow" if kind == "slow" else "main",
                        "from": "shop@example.com",
                        "to": [f"{local[kind]}-{number}@example.org"],
                        "subject": f"soak {soak_id}",
                        "body": "Soak test message.",
                        "headers": {"X-Soak-Id": soak_id},
                    }
                )
                kinds[soak_id] = kind
            started = time.monotonic()
            try:
                answer = session.post(
                    f"{self.base}/commands/add-messages",
                    json={"messages": batch},
                    headers=self.auth,
                    timeout=30,
                )
                ok = answer.status_code == 200
                refused = {r.get("id") for r in answer.json().get("rejected", [])} if ok else set()
            except (requests.RequestException, ValueError):
                ok, refused = False, set()
            with self.load.lock:
                self.load.latencies.append(time.monotonic() - started)
                if not ok:
                    self.load.refused_calls += 1
                for soak_id, kind in kinds.items():
                    if ok and soak_id not in refused:
                        self.load.accepted[soak_id] = kind
            next_at += interval
            self.stop_load.wait(max(0.0, next_at - time.monotonic()))

    # -- measures ------------------------------------------------------------------------
    def sink_lines(self) -> list[list[str]]:
        try:
            text = self.sink_log.read_text()
        except FileNotFoundError:
            return []
        return [line.split("\t") for line in text.splitlines() if line.count("\t") == 2]

    def db_scalar(self, sql: str) -> Any:
        try:
            with self.app_db.connect() as conn:
                return conn.exec_driver_sql(sql).scalar()
        except sa.exc.SQLAlchemyError:
            return None

    def queue_depth(self) -> Any:
        return self.db_scalar(
            "SELECT count(*) FROM messages WHERE status IN ('pending','deferred')"
        )

    def report_minute(self, minute: int, delivered_before: int) -> int:
        delivered = len(self.sink_lines())
        with self.load.lock:
            latencies, self.load.latencies = self.load.latencies, []
        p99 = sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000 if latencies else 0.0
        rss = ", ".join(f"{p.role} {rss_mb(p.pid):.0f}" for p in self.procs.values())
        rss += f", redis {rss_mb(self.redis.proc.pid):.0f}" if self.redis.proc else ""
        size = self.db_scalar(f"SELECT pg_database_size('{self.dbname}')")
        size_mb = f"{size / 1e6:.1f} MB" if size else "?"
        per_second = (delivered - delivered_before) / 60
        self.minute_delivered.append(delivered - delivered_before)
        say(
            f"minute {minute}: delivered {per_second:.1f}/s, add-messages p99 {p99:.0f} ms, "
            f"queue {self.queue_depth()}, database {size_mb}; RSS MB: {rss}"
        )
        for proc in self.procs.values():
            if proc.rss_first is None and time.monotonic() - proc.started >= 60:
                proc.rss_first = rss_mb(proc.pid)
        return delivered

    # -- faults --------------------------------------------------------------------------
    def fault(self, number: int) -> None:
        kind = FAULTS[number % len(FAULTS)]
        if kind == "kill-worker":
            role = f"worker-{number // len(FAULTS) % 2 + 1}"
            in_flight = self.db_scalar(
                "SELECT count(*) FROM messages WHERE status IN ('pending','deferred') "
                "AND lease_until > extract(epoch from now())"
            )
            self.procs[role].stop(signal.SIGKILL)
            self.in_flight_at_kills += int(in_flight or 0)
            self.killed_workers += 1
            self.worker(role)
            say(f"fault: SIGKILL {role} ({in_flight} messages claimed); a new one started")
        elif kind == "restart-redis":
            self.redis.stop()
            time.sleep(2)
            self.redis.start()
            say("fault: Redis restarted (its queues are gone; the database is the truth)")
        elif kind == "terminate-postgres":
            with self.admin.connect() as conn:
                ended = conn.execute(
                    sa.text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": self.dbname},
                ).scalar()
            say(f"fault: {ended} PostgreSQL backends of the app terminated")
        else:
            pause = min(60.0, self.args.fault_every / 2)
            self.procs["sink"].stop()
            say(f"fault: SMTP server stopped for {pause:.0f} s")
            self.sink_back_at = time.monotonic() + pause

    def supervise(self) -> None:
        """Restart a worker, beat or API process that died by itself, as an orchestrator
        (Kubernetes, systemd, ``mail-proxy start``) would, and say so: each one is a finding."""
        if self.sink_back_at is not None and time.monotonic() >= self.sink_back_at:
            self.sink_back_at = None
            self._restart_sink()
        for role in ("worker-1", "worker-2", "beat", "api"):
            proc = self.procs[role]
            if proc.popen is None or proc.popen.poll() is None:
                continue
            last = _last_error(proc.log)
            self.unexpected_exits.append(f"{role} ({last})")
            say(f"{role} exited by itself (code {proc.popen.returncode}: {last}); restarted")
            proc.start()

    def _restart_sink(self) -> None:
        self.sink("sink", self.sink_port)
        say("SMTP server back")

    # -- run -----------------------------------------------------------------------------
    def run(self) -> int:
        loader = threading.Thread(target=self.offer, daemon=True)
        started = time.monotonic()
        loader.start()
        delivered, minute, faults = 0, 0, 0
        end = started + self.args.minutes * 60
        next_minute, next_fault = started + 60, started + self.args.fault_every
        while time.monotonic() < end:
            time.sleep(max(0.0, min(1.0, min(next_minute, next_fault, end) - time.monotonic())))
            self.supervise()
            now = time.monotonic()
            if now >= next_fault and now < end:
                self.fault(faults)
                faults += 1
                next_fault += self.args.fault_every
            if now >= next_minute:
                minute += 1
                delivered = self.report_minute(minute, delivered)
                next_minute += 60
        self.stop_load.set()
        loader.join(timeout=60)
        say(f"load stopped; draining (up to {self.args.drain:.0f} s)")
        drain_end = time.monotonic() + self.args.drain
        while time.monotonic() < drain_end and (self.queue_depth() or 0) > 0:
            time.sleep(2)
            self.supervise()
        return self.verdict()

    def verdict(self) -> int:
        lines = self.sink_lines()
        by_id = collections.Counter(line[0] for line in lines)
        by_message_id = collections.Counter(line[1] for line in lines if line[1])
        with self.app_db.connect() as conn:
            status = dict(conn.exec_driver_sql("SELECT id, status FROM messages").all())
        accepted = self.load.accepted
        expect_delivery = [i for i, kind in accepted.items() if kind != "reject"]
        lost = [i for i in expect_delivery if i not in by_id]
        lost += [i for i, k in accepted.items() if k == "reject" and status.get(i) != "error"]
        waiting = [i for i in lost if status.get(i) in ("pending", "deferred")]
        sent_without_250 = [i for i, s in status.items() if s == "sent" and i not in by_id]
        duplicates = sum(count - 1 for count in by_id.values() if count > 1)
        duplicate_ids = sum(count - 1 for count in by_message_id.values() if count > 1)
        bars: list[tuple[str, bool]] = []
        say(
            f"processes that exited by themselves and were restarted: "
            f"{len(self.unexpected_exits)} {self.unexpected_exits[:6]}"
        )
        say(
            f"offered calls refused by the API: {self.load.refused_calls}; messages accepted: "
            f"{len(accepted)}; delivered lines at the sink: {len(lines)}"
        )
        say(f"messages lost: {len(lost)} (of which still waiting: {len(waiting)}) {lost[:5]}")
        bars.append(("0 lost", not lost))
        say(f"sent without a 250: {len(sent_without_250)} {sent_without_250[:5]}")
        bars.append(("0 sent without a 250", not sent_without_250))
        say(
            f"duplicates at the sink: {duplicates} by message id ({duplicate_ids} sharing a "
            f"Message-ID header); messages claimed at the {self.killed_workers} SIGKILL(s): "
            f"{self.in_flight_at_kills}"
        )
        bars.append(("duplicates <= in flight at SIGKILLs", duplicates <= self.in_flight_at_kills))
        if self.args.minutes >= 30:
            window = 10
            first = sum(self.minute_delivered[:window])
            last = sum(self.minute_delivered[-window:])
            ratio = last / first if first else 0.0
            say(f"throughput last {window} min / first {window} min: {ratio:.1%}")
            bars.append(("throughput >= 90%", ratio >= 0.9))
            for proc in self.procs.values():
                if proc.rss_first:
                    growth = rss_mb(proc.pid) / proc.rss_first - 1
                    say(f"RSS growth {proc.role}: {growth:+.1%}")
                    bars.append((f"RSS growth {proc.role} <= 10%", growth <= 0.10))
        else:
            say("throughput and RSS growth bars: n/a (run shorter than 30 minutes)")
        failed = [name for name, ok in bars if not ok]
        say("bars: " + ", ".join(f"{name} {'ok' if ok else 'FAILED'}" for name, ok in bars))
        return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=100, help="messages offered a second")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep every process's log in this directory"
    )
    parser.add_argument(
        "--fault-every",
        type=float,
        default=None,
        help="seconds between faults (default: every 10 minutes, a sixth of the run when shorter)",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=None,
        help="seconds to wait for the queue to empty after the load",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
        help="an admin URL of the PostgreSQL server",
    )
    args = parser.parse_args()
    if args.fault_every is None:
        args.fault_every = min(600.0, args.minutes * 60 / 6)
    if args.drain is None:
        args.drain = max(120.0, min(600.0, args.minutes * 60 / 6))
    say(
        f"soak: {args.minutes:g} min at {args.rate:g} msg/s, a fault every "
        f"{args.fault_every:.0f} s (rotation: {', '.join(FAULTS)})"
    )
    # SIGTERM (a test's timeout, Ctrl-C in another form) still cleans up: database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with tempfile.TemporaryDirectory(prefix="mailproxy-soak-") as tmp:
        soak = Soak(args, Path(tmp))
        code = 1
        try:
            soak.up()
            code = soak.run()
        finally:
            soak.down()
            if args.keep is not None:
                shutil.copytree(Path(tmp), args.keep, dirs_exist_ok=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
