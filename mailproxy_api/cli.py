"""The ``mail-proxy`` command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from werkzeug.serving import make_server

import mailproxy_models.migrate as migrate
from mailproxy_models.db import session_scope
from mailproxy_models.instance import admin_token, key_files, open_instance
from mailproxy_models.key_rotation import count_stale_secrets, reencrypt_secrets
from mailproxy_models.secrets_box import RELOAD_INTERVAL
from mailproxy_models.settings import Settings, get_settings

from .cli_admin import batches_cli, tenants_cli, tokens_cli

cli = typer.Typer(
    help="mailproxy: transactional email proxy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
console = Console()
err_console = Console(stderr=True)

# How the embedded worker runs: threads, so SQLite and the polling broker are shared cheaply.
EMBEDDED_WORKER_CONCURRENCY = 4
WORKER_STOP_TIMEOUT = 20


def _configure(data_dir: Path | None, port: int | None, host: str | None) -> Settings:
    """Apply command-line overrides through the environment, so child processes agree."""
    if data_dir is not None:
        os.environ["MAILPROXY_DATA_DIR"] = str(data_dir.expanduser().resolve())
    if port is not None:
        os.environ["MAILPROXY_PORT"] = str(port)
    if host is not None:
        os.environ["MAILPROXY_HOST"] = host
    get_settings.cache_clear()
    return get_settings()


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    logs = settings.data_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "mailproxy_workers",
        "worker",
        "--beat",
        "--pool=threads",
        f"--concurrency={EMBEDDED_WORKER_CONCURRENCY}",
        f"--schedule={settings.data_path / 'celerybeat-schedule'}",
        f"--loglevel={settings.log_level}",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"mailproxy-embedded-{os.getpid()}@%h",
    ]
    log_file = open(logs / "worker.log", "ab")  # noqa: SIM115 - owned by the child for its life
    return subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)  # warm shutdown: running deliveries finish
    try:
        worker.wait(timeout=WORKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=5)


@cli.command()
def start(
    port: Annotated[int | None, typer.Option(help="API port (default 8000).")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the database, broker and keys live.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="API address (default 127.0.0.1).")] = None,
) -> None:
    """Run API, worker and scheduler together on the embedded default (SQLite, no servers)."""
    settings = _configure(data_dir, port, host)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.effective_database_url)
    token = admin_token(settings)

    from .app import create_app  # the API's imports are needed by this command only

    app = create_app(settings)
    server = make_server(settings.host, settings.port, app, threaded=True)
    worker = _start_worker(settings)
    base = f"http://{settings.host}:{server.server_port}"
    console.print(f"[bold green]mailproxy[/] running, data in {settings.data_path}")
    console.print(f"  API:         {base}")
    console.print(f"  Swagger UI:  {base}/docs")
    console.print(f"  Admin token: {token}")
    console.print(f"  Worker log:  {settings.data_path / 'logs' / 'worker.log'}")
    console.print("Press Ctrl-C to stop.", highlight=False)
    sys.stdout.flush()

    def _shutdown(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, _shutdown)
    signal.signal(signal.SIGTERM, _shutdown)
    try:
        server.serve_forever()
    finally:
        console.print("stopping worker...")
        _stop_worker(worker)
        console.print("stopped.")


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date (safe to run repeatedly)."""
    url = get_settings().effective_database_url
    migrate.upgrade(url, revision)
    console.print(f"database at revision {migrate.current_revision(url)}")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision.")]) -> None:
    """Go back to an older schema revision (``base`` removes every table)."""
    url = get_settings().effective_database_url
    migrate.downgrade(url, revision)
    console.print(f"database at revision {migrate.current_revision(url)}")


keys_cli = typer.Typer(help="Encryption keys of stored secrets.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(tenants_cli, name="tenants")
cli.add_typer(tokens_cli, name="tokens")
cli.add_typer(batches_cli, name="batches")


@keys_cli.command("rotate")
def keys_rotate(
    batch: Annotated[int, typer.Option(help="Rows re-encrypted per transaction.")] = 100,
) -> None:
    """Re-encrypt every stored secret under a new key while the service keeps running.

    Embedded mode (key file in the data directory): a new key is made current, running
    processes pick it up within a second and still read the old one, every secret is
    re-encrypted, then the old key is retired. At scale (MAILPROXY_ENCRYPTION_KEY set): set
    the new key there and the old one in MAILPROXY_PREVIOUS_ENCRYPTION_KEYS on every
    process first; this re-encrypts what the old key wrote; then drop the old key.
    """
    settings = get_settings()
    files = None if settings.encryption_key is not None else key_files(settings)
    if files is not None:
        new_id = files.rotate()
        console.print(f"new current key {new_id}")
        time.sleep(RELOAD_INTERVAL + 1)  # running processes now encrypt with the new key
    instance = open_instance(settings)
    with session_scope(instance.sessions) as session:
        total = count_stale_secrets(session, instance.box)
    done = 0
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("re-encrypting secrets", total=total or 1)
        while True:
            with session_scope(instance.sessions) as session:
                changed = reencrypt_secrets(session, instance.box, batch)
            if not changed:
                break
            done += changed
            progress.update(task, completed=min(done, total))
        progress.update(task, completed=total or 1)
    retired = files.retire_previous() if files is not None else 0
    console.print(
        f"{done} secrets re-encrypted under key {instance.box.key_id}; "
        f"{retired} old key file(s) removed"
    )


def main() -> None:
    """Exit codes: 0 done, 1 refused or failed (the message says why), 2 bad usage."""
    try:
        cli()
    except Exception as exc:  # noqa: BLE001 - errors without tracebacks; the message says why
        err_console.print(f"[red]error:[/] {exc}")
        raise SystemExit(1) from exc
