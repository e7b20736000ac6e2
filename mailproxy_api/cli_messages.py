"""`mail-proxy messages ...`, `send` and `run-now`: a tenant's (or with the admin token every
tenant's) messages through the API of a running instance."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .api_client import ApiClient
from .cli_admin import AsJson, Tenant, format_ts, print_rows
from .cli_contexts import Token, Url, connect
from .eml_import import InvalidEml, payload_from_eml

console = Console()
err_console = Console(stderr=True)

messages_cli = typer.Typer(
    help="Messages: list, show with their events, retry, delete.", no_args_is_help=True
)

# add-messages takes at most this many per call by default (MAILPROXY_MAX_MESSAGES_PER_CALL).
SEND_CHUNK = 100
PAGE = 500
LIST_COLUMNS = ["id", "tenant_id", "account_id", "status", "priority", "batch_code", "created_at"]
EVENT_COLUMNS = ["ts", "kind", "description", "smtp_code", "enhanced_status", "worker"]


def _tenant_body(tenant: str | None) -> dict[str, str]:
    return {"tenant_id": tenant} if tenant else {}


@messages_cli.command("list")
def messages_list(
    status: Annotated[
        str | None, typer.Option(help="pending, deferred, sent or error.", show_default=False)
    ] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch code.")] = None,
    tenant: Tenant = None,
    limit: Annotated[int, typer.Option(min=1, help="At most so many messages.")] = 100,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Messages in the order they were queued (follows the API's pages up to --limit)."""
    client = connect(url, token)
    query: dict[str, Any] = {"status": status, "batch_code": batch, **_tenant_body(tenant)}
    query = {k: v for k, v in query.items() if v is not None}
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < limit:
        page_size = min(PAGE, limit - len(found))
        params = {**query, "limit": page_size, **({"cursor": cursor} if cursor else {})}
        answer = client.call("GET", "/messages", params=params)
        found += answer["messages"]
        cursor = answer["next_cursor"]
        if not cursor:
            break
    print_rows(found, LIST_COLUMNS, as_json, f"{len(found)} message(s)")


@messages_cli.command("show")
def messages_show(
    msg_id: str,
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """One message and all its events (attempts, bounces, receipts), oldest first."""
    answer = connect(url, token).call("GET", f"/message/{msg_id}", params=_tenant_body(tenant))
    message = answer["message"]
    if as_json:
        console.print_json(json.dumps(message))
        return
    record = Table(title=f"message {msg_id}", show_header=False)
    for key, value in message.items():
        if key != "events":
            shown = format_ts(value) if key.endswith(("_at", "_ts")) else value
            record.add_row(key, "-" if shown is None else str(shown))
    console.print(record)
    print_rows(message["events"], EVENT_COLUMNS, False, "events")


@messages_cli.command("retry")
def messages_retry(
    ids: Annotated[list[str], typer.Argument(help="Message ids.")],
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Send messages in error or deferred again now, with a full retry schedule. Exit 1 if
    any was not found or cannot be retried (a sent one would be delivered twice)."""
    body = {"ids": ids, **_tenant_body(tenant)}
    answer = connect(url, token).call("POST", "/commands/retry-messages", json=body)
    console.print(f"{answer['retried']} message(s) will be sent again")
    for msg_id in answer["not_found"]:
        err_console.print(f"{msg_id}: not found")
    for refused in answer["not_retryable"]:
        err_console.print(f"{refused['id']}: not retried: {refused['reason']}")
    if answer["not_found"] or answer["not_retryable"]:
        raise typer.Exit(1)


@messages_cli.command("delete")
def messages_delete(
    ids: Annotated[list[str], typer.Argument(help="Message ids.")],
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Remove messages with their events. Exit 1 if any was not found."""
    body = {"ids": ids, **_tenant_body(tenant)}
    answer = connect(url, token).call("POST", "/commands/delete-messages", json=body)
    console.print(f"{answer['removed']} message(s) deleted")
    for msg_id in answer["not_found"]:
        err_console.print(f"{msg_id}: not found")
    if answer["not_found"]:
        raise typer.Exit(1)


def send(
    files: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help=".eml files to send.")
    ],
    account: Annotated[
        str | None, typer.Option(help="Account id (default: the tenant's default).")
    ] = None,
    tenant: Tenant = None,
    priority: Annotated[
        int | None, typer.Option(min=0, max=3, help="0 immediate, 1 high, 2 medium, 3 low.")
    ] = None,
    msg_id: Annotated[
        str | None,
        typer.Option("--id", help="Message id (one file only; default: one generated per file)."),
    ] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Batch code.")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Queue .eml files as messages. Exit 1 if any was rejected (each one says why)."""
    if msg_id is not None and len(files) > 1:
        raise typer.BadParameter("--id names one message; give one file", param_hint="--id")
    extra = {"account_id": account, "priority": priority, "batch_code": batch}
    extra.update(_tenant_body(tenant))
    payloads: list[dict[str, Any]] = []
    rejected: list[dict[str, str]] = []
    names: dict[str, Path] = {}
    for path in files:
        one_id = msg_id or f"cli-{uuid.uuid4().hex[:16]}"
        names[one_id] = path
        try:
            payload = payload_from_eml(path.read_bytes(), one_id)
        except InvalidEml as exc:
            rejected.append({"id": one_id, "reason": str(exc)})
            continue
        payloads.append({**payload, **{k: v for k, v in extra.items() if v is not None}})
    queued = _send_in_chunks(connect(url, token), payloads, rejected)
    console.print(f"{queued} message(s) queued")
    accepted = {p["id"] for p in payloads} - {r["id"] for r in rejected}
    for one_id in sorted(accepted, key=lambda i: str(names[i])):
        console.print(f"  queued   {names[one_id]}  id={one_id}", highlight=False)
    for refused in rejected:
        err_console.print(
            f"  rejected {names.get(refused['id'], refused['id'])}: {refused['reason']}",
            highlight=False,
        )
    if rejected:
        raise typer.Exit(1)


def _send_in_chunks(
    client: ApiClient, payloads: list[dict[str, Any]], rejected: list[dict[str, str]]
) -> int:
    """POST add-messages a chunk at a time, with a progress bar when there is more than one."""
    queued = 0
    with Progress(console=console, disable=len(payloads) < 2) as progress:
        task = progress.add_task("sending", total=len(payloads))
        for start in range(0, len(payloads), SEND_CHUNK):
            chunk = payloads[start : start + SEND_CHUNK]
            answer = client.call("POST", "/commands/add-messages", json={"messages": chunk})
            queued += answer["queued"]
            rejected += answer["rejected"]
            progress.advance(task, len(chunk))
    return queued


def run_now(tenant: Tenant = None, url: Url = None, token: Token = None) -> None:
    """Wake delivery now (and the report sync of the tenant)."""
    answer = connect(url, token).call("POST", "/commands/run-now", json=_tenant_body(tenant))
    woken = ", ".join(str(p) for p in answer.get("woken", [])) or "none due"
    console.print(f"delivery woken; priorities with due messages: {woken}")
