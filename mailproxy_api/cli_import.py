"""`mail-proxy import genro PATH`: bring a genro-mail-proxy instance's data over."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from mailproxy_models.settings import get_settings

if TYPE_CHECKING:  # the database modules load when the command runs
    from mailproxy_models import genro_import

import_cli = typer.Typer(help="Bring data over from another mail proxy.", no_args_is_help=True)
console = Console()


@import_cli.command("genro")
def import_genro_command(
    path: Annotated[Path, typer.Argument(help="The instance directory, or its mail_service.db.")],
    genro_key: Annotated[
        str | None,
        typer.Option(
            "--genro-key",
            envvar="MAIL_PROXY_ENCRYPTION_KEY",
            help="That instance's encryption key (base64); by default read where "
            "genro-mail-proxy reads it.",
            show_envvar=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show what would come over; no data is changed (the schema is still "
            "brought up to date).",
        ),
    ] = False,
) -> None:
    """Import tenants, accounts (credentials re-encrypted), tenant API keys (they keep
    working) and every message not yet sent. Safe to run again: what is here is kept."""
    from mailproxy_models import genro_import, migrate
    from mailproxy_models.instance import open_instance
    from mailproxy_models.message_validation import MessageLimits

    database = genro_import.genro_database(path)
    key = genro_import.genro_key(database, genro_key)
    source = genro_import.read_genro(database)
    settings = get_settings()
    migrate.upgrade(settings.effective_database_url)  # a new instance gets its tables first
    instance = open_instance(settings)
    limits = MessageLimits(settings.max_recipients_per_message, settings.max_headers_per_message)
    totals = {
        "tenants": len(source.tenants),
        "accounts": len(source.accounts),
        "messages": len(source.messages),
    }
    session = instance.sessions()
    try:
        with Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
        ) as progress:
            tasks = {kind: progress.add_task(kind, total=total) for kind, total in totals.items()}
            summary = genro_import.import_genro(
                session,
                instance.box,
                source,
                key,
                limits,
                lambda kind, done: progress.advance(tasks[kind], done),
            )
        if dry_run:
            session.rollback()
        else:
            session.commit()
    finally:
        session.close()
        instance.engine.dispose()
    _print_summary(summary, database, dry_run)


def _print_summary(summary: genro_import.ImportSummary, database: Path, dry_run: bool) -> None:
    verb = "would import" if dry_run else "imported"
    table = Table(title=f"{database} ({'dry run, nothing changed' if dry_run else 'done'})")
    table.add_column("")
    table.add_column(verb, justify="right")
    table.add_column("already here", justify="right")
    for kind in ("tenants", "accounts", "api_keys", "messages"):
        table.add_row(
            kind.replace("_", " "),
            str(getattr(summary, kind)),
            str(summary.already_here.get(kind, 0)),
        )
    console.print(table)
    for tenant_id, why in summary.keys_not_kept:
        console.print(f"tenant {tenant_id}: its API key cannot be kept ({why})", highlight=False)
    for tenant_id, new_key in summary.new_keys.items():
        shown = "(issued when run without --dry-run)" if dry_run else f"{new_key} (shown once)"
        console.print(f"tenant {tenant_id}: new API key {shown}", highlight=False)
    for tenant_id, message_id, why in summary.messages_refused:
        console.print(f"message {tenant_id}/{message_id} not imported: {why}", highlight=False)
    for account in summary.insecure_auth:
        console.print(
            f"account {account}: logs in without TLS as it did before "
            "(allow_insecure_auth: true); turn TLS on when its server offers it",
            highlight=False,
        )
