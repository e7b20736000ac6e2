"""The ``mail-proxy`` command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from werkzeug.serving import make_server

from mailproxy_models.settings import Settings, get_settings

from . import cli_contexts
from .api_client import ApiClient, ApiError
from .cli_admin import accounts_cli, batches_cli, tenants_cli, tokens_cli
from .cli_contexts import CliUsageError, Context, ContextStore, Token, Url, connect, context_cli
from .cli_inbound import inbound_cli
from .cli_instances import (
    LocalInstance,
    delete_instance,
    instances_home,
    process_start,
    start_in_background,
    stop_instance,
)
from .cli_messages import messages_cli, run_now, send
from .cli_suppressions import suppressions_cli

cli = typer.Typer(
    help="mailproxy: transactional email proxy.\n\nExit codes: 0 done, 1 the API or the "
    "operation failed (the message on stderr says why), 2 the command line is wrong.",
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


@cli.callback()
def root(
    context: Annotated[
        str | None,
        typer.Option("--context", help="Use this saved context instead of the current one."),
    ] = None,
) -> None:
    cli_contexts.selected_context = context


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@cli.command()
def start(
    name: Annotated[
        str | None,
        typer.Argument(
            help="A named local instance, in its own directory under $MAILPROXY_HOME "
            "(default ~/.mailproxy/instances); without a name, the one in --data-dir.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="API port (default 8000; a free one for a named instance).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the database, broker and keys live.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="API address (default 127.0.0.1).")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run a named instance in the background.")
    ] = False,
    background: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Run API, worker and scheduler together on the embedded default (SQLite, no servers)."""
    instance = None
    if name is not None:
        if data_dir is not None:
            raise CliUsageError(
                "a named instance keeps its data in its own directory; "
                "give a name or --data-dir, not both"
            )
        instance = LocalInstance.named(name)
        if instance.running_pid() is not None:
            raise RuntimeError(f"instance {name} is already running; see: mail-proxy status {name}")
        data_dir, port = instance.path, port or _free_port()
    elif detach:
        raise CliUsageError("--detach needs an instance name: mail-proxy start NAME --detach")
    if detach and instance is not None:
        record = start_in_background(instance, port or 0, host or "127.0.0.1")
        ContextStore().save(Context(instance.name, record["url"], record["admin_token"]), True)
        console.print(
            f"[bold green]mailproxy[/] instance {instance.name} running (pid {record['pid']})"
        )
        console.print(f"  API:         {record['url']}")
        console.print(f"  Admin token: {record['admin_token']}")
        console.print(f"  Data:        {instance.path}")
        console.print(
            f"  context {instance.name} saved and in use; stop it: mail-proxy stop {instance.name}"
        )
        return
    settings = _configure(data_dir, port, host)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    # Database and API modules are imported by the commands that need them: every other
    # command (which only talks HTTP) starts in a fraction of the time.
    import mailproxy_models.migrate as migrate
    from mailproxy_models.instance import admin_token

    migrate.upgrade(settings.effective_database_url)
    token = admin_token(settings)

    from .app import create_app  # the API's imports are needed by this command only
    from .errors import JsonErrorRequestHandler

    app = create_app(settings)
    server = make_server(
        settings.host, settings.port, app, threaded=True, request_handler=JsonErrorRequestHandler
    )
    worker = _start_worker(settings)
    base = f"http://{settings.host}:{server.server_port}"
    if instance is not None:
        instance.write_record(
            pid=os.getpid(),
            pid_start=process_start(os.getpid()),
            worker_pid=worker.pid,
            worker_pid_start=process_start(worker.pid),
            port=server.server_port,
            url=base,
            admin_token=token,
            started_at=int(time.time()),
        )
        if not background:
            ContextStore().save(Context(instance.name, base, token), make_current=True)
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
        if instance is not None:
            instance.write_record(pid=None, worker_pid=None)
        console.print("stopped.")


@cli.command()
def stop(name: Annotated[str, typer.Argument(help="Local instance name.")]) -> None:
    """Stop a local instance (running deliveries finish first)."""
    instance = LocalInstance.existing(name)
    if stop_instance(instance):
        console.print(f"instance {name} stopped")
    else:
        console.print(f"instance {name} is not running")


@cli.command("list")
def list_instances(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Local instances and whether they run."""
    rows = [instance.summary() for instance in LocalInstance.all()]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"local instances ({instances_home()})")
    for column in ("name", "state", "url", "pid", "dir"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *[
                "-" if row[c] is None else str(row[c])
                for c in ("name", "state", "url", "pid", "dir")
            ]
        )
    console.print(table)


@cli.command()
def status(
    name: Annotated[
        str | None,
        typer.Argument(
            help="Local instance; without it, the API of the current context.", show_default=False
        ),
    ] = None,
    url: Url = None,
    token: Token = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether an instance runs, where, and its queue (the API's /status)."""
    summary: dict[str, Any] = {}
    if name is not None:
        instance = LocalInstance.existing(name)
        summary = instance.summary()
        client = ApiClient(summary["url"] or "", instance.record().get("admin_token", ""))
    else:
        client = connect(url, token)
        summary = {"url": client.base_url}
    if summary.get("state", "running") == "running":
        try:
            summary["status"] = client.call("GET", "/status")
        except ApiError as exc:
            if name is None:
                raise
            summary["status"] = {"error": str(exc)}
    if as_json:
        console.print_json(json.dumps(summary))
        return
    if name is not None:
        console.print(f"instance {name}: {summary['state']}", highlight=False)
        if summary["state"] != "stopped":
            console.print(f"  URL: {summary['url']}  pid: {summary['pid']}", highlight=False)
        console.print(f"  dir: {summary['dir']}", highlight=False)
    else:
        console.print(f"API at {summary['url']}: running", highlight=False)
    answer = summary.get("status")
    if answer and "error" not in answer:
        depths = answer["queue_depth"]
        order = ("immediate", "high", "medium", "low")
        depth = ", ".join(f"{p} {depths[p]}" for p in sorted(depths, key=_priority_rank(order)))
        console.print(
            f"  version {answer['version']}, up {answer['uptime_seconds']}s, "
            f"active={answer['active']}; waiting: {depth}",
            highlight=False,
        )
    elif answer:
        console.print(f"  /status: {answer['error']}", highlight=False)


def _priority_rank(order: tuple[str, ...]) -> Any:
    return lambda name: order.index(name) if name in order else len(order)


@cli.command()
def delete(
    name: Annotated[str, typer.Argument(help="Local instance name.")],
    force: Annotated[bool, typer.Option("--force", help="Stop it first if it runs.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Remove a local instance's directory: its database, keys and logs."""
    instance = LocalInstance.existing(name)
    if instance.running_pid() is not None:
        if not force:
            raise RuntimeError(f"instance {name} is running; stop it first or use --force")
        stop_instance(instance)
    if not yes:
        typer.confirm(f"Delete instance {name} and everything in {instance.path}?", abort=True)
    url = instance.record().get("url")
    delete_instance(instance)
    store = ContextStore()
    contexts, _current = store.all()
    if any(c.name == name and c.url == url for c in contexts):
        store.delete(name)  # the context start saved for it; it points nowhere now
    console.print(f"instance {name} deleted")


@db_cli.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Bring the database schema up to date (safe to run repeatedly)."""
    import mailproxy_models.migrate as migrate

    url = get_settings().effective_database_url
    migrate.upgrade(url, revision)
    console.print(f"database at revision {migrate.current_revision(url)}")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision.")]) -> None:
    """Go back to an older schema revision (``base`` removes every table)."""
    import mailproxy_models.migrate as migrate

    url = get_settings().effective_database_url
    migrate.downgrade(url, revision)
    console.print(f"database at revision {migrate.current_revision(url)}")


keys_cli = typer.Typer(help="Encryption keys of stored secrets.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(tenants_cli, name="tenants")
cli.add_typer(tokens_cli, name="tokens")
cli.add_typer(batches_cli, name="batches")
cli.add_typer(accounts_cli, name="accounts")
cli.add_typer(messages_cli, name="messages")
cli.add_typer(suppressions_cli, name="suppressions")
cli.add_typer(inbound_cli, name="inbound")
cli.add_typer(context_cli, name="context")
cli.command("send")(send)
cli.command("run-now")(run_now)


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
    from mailproxy_models.db import session_scope
    from mailproxy_models.instance import key_files, open_instance
    from mailproxy_models.key_rotation import count_stale_secrets, reencrypt_secrets
    from mailproxy_models.secrets_box import RELOAD_INTERVAL

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


@db_cli.command("purge")
def db_purge(
    older_than_days: Annotated[
        float | None, typer.Option(help="Default: MAILPROXY_RETENTION_DAYS.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    batch: Annotated[int, typer.Option(help="Messages deleted per transaction.")] = 1000,
) -> None:
    """Delete reported messages older than the retention period now, with their events
    (what beat does every hour), showing progress. Unreported messages are never deleted."""
    from mailproxy_models.db import now, session_scope
    from mailproxy_models.instance import open_instance
    from mailproxy_models.reports import count_purgeable

    settings = get_settings()
    days = settings.retention_days if older_than_days is None else older_than_days
    older_than = now() - days * 86400
    instance = open_instance(settings)
    with session_scope(instance.sessions) as session:
        total = count_purgeable(session, older_than, tenant)
    done = 0
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("purging reported messages", total=total or 1)
        while batch_done := _purge_batch(instance, older_than, tenant, batch):
            done += batch_done
            progress.update(task, completed=min(done, total))
        progress.update(task, completed=total or 1)
    console.print(f"{done} reported messages older than {days:g} days deleted")


def _purge_batch(instance: Any, older_than: float, tenant: str | None, batch: int) -> int:
    from mailproxy_models.db import session_scope
    from mailproxy_models.reports import purge_reported

    with session_scope(instance.sessions) as session:
        return purge_reported(session, older_than, tenant, batch)


def main(argv: list[str] | None = None) -> None:
    """Exit codes: 0 done, 1 refused or failed (the message says why), 2 bad usage."""
    try:
        cli(args=argv, prog_name="mail-proxy")
    except CliUsageError as exc:
        err_console.print(f"[red]usage error:[/] {exc}", highlight=False)
        raise SystemExit(2) from exc
    except Exception as exc:  # noqa: BLE001 - errors without tracebacks; the message says why
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
