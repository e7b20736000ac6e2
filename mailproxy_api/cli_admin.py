"""`mail-proxy tenants ...` and `mail-proxy tokens ...`: administration through the API of a
running instance (local or remote), with the admin token."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .api_client import ApiClient

console = Console()

Url = Annotated[
    str, typer.Option("--url", envvar="MAILPROXY_URL", help="Base URL of the mailproxy API.")
]
Token = Annotated[
    str,
    typer.Option(
        "--token", envvar="MAILPROXY_ADMIN_TOKEN", help="Admin token.", show_default=False
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LOCAL = "http://127.0.0.1:8000"

tenants_cli = typer.Typer(help="Tenants of an instance.", no_args_is_help=True)
tokens_cli = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)
batches_cli = typer.Typer(help="Suspend and activate a tenant or a batch.", no_args_is_help=True)
Batch = Annotated[str | None, typer.Option("--batch", help="Only this batch code.")]


def _when(ts: int | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _print(rows: list[dict[str, Any]], columns: list[str], as_json: bool, title: str) -> None:
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_when(row[c]) if c.endswith("_at") else str(row[c]) for c in columns])
    console.print(table)


@tenants_cli.command("create")
def tenant_create(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id.")],
    url: Url = LOCAL,
    token: Token = "",
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Create a tenant and print its first API key (shown only this once)."""
    body = ApiClient(url, token).call("POST", "/tenant", json={"id": tenant_id, "name": name})
    console.print(f"tenant {tenant_id} created; API key (shown once): {body['api_key']}")


@tenants_cli.command("list")
def tenant_list(url: Url = LOCAL, token: Token = "", as_json: AsJson = False) -> None:
    tenants = ApiClient(url, token).call("GET", "/tenants")["tenants"]
    _print(tenants, ["id", "name", "active", "created_at"], as_json, "tenants")


@tenants_cli.command("delete")
def tenant_delete(
    tenant_id: str,
    url: Url = LOCAL,
    token: Token = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a tenant with its accounts and messages."""
    if not yes:
        typer.confirm(f"Delete tenant {tenant_id} with all its accounts and messages?", abort=True)
    ApiClient(url, token).call("DELETE", f"/tenant/{tenant_id}")
    console.print(f"tenant {tenant_id} deleted")


@tokens_cli.command("create")
def token_create(
    tenant_id: str,
    url: Url = LOCAL,
    token: Token = "",
    name: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after so many days.")] = None,
) -> None:
    """Issue another key for a tenant (old keys stay valid until revoked)."""
    expires_at = None
    if expires_in_days is not None:
        expires_at = int(datetime.now(UTC).timestamp()) + expires_in_days * 86400
    body = ApiClient(url, token).call(
        "POST", f"/tenant/{tenant_id}/api-key", json={"name": name, "expires_at": expires_at}
    )
    console.print(f"API key for {tenant_id} (shown once): {body['api_key']}")


@tokens_cli.command("list")
def token_list(
    tenant_id: str, url: Url = LOCAL, token: Token = "", as_json: AsJson = False
) -> None:
    keys = ApiClient(url, token).call("GET", f"/tenant/{tenant_id}/api-keys")["api_keys"]
    columns = ["key_id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    _print(keys, columns, as_json, f"API keys of {tenant_id}")


@tokens_cli.command("revoke")
def token_revoke(
    tenant_id: str,
    key_id: Annotated[
        int | None, typer.Argument(help="Key to revoke; all keys if omitted.")
    ] = None,
    url: Url = LOCAL,
    token: Token = "",
) -> None:
    client = ApiClient(url, token)
    if key_id is None:
        revoked = client.call("DELETE", f"/tenant/{tenant_id}/api-key")["revoked"]
        console.print(f"{revoked} key(s) of {tenant_id} revoked")
    else:
        client.call("DELETE", f"/tenant/{tenant_id}/api-key/{key_id}")
        console.print(f"key {key_id} of {tenant_id} revoked")


def _suspension(action: str, tenant_id: str, batch: str | None, url: str, token: str) -> None:
    body: dict[str, Any] = {"tenant_id": tenant_id, **({"batch_code": batch} if batch else {})}
    state = ApiClient(url, token).call("POST", f"/commands/{action}", json=body)
    held = ", ".join(state["suspended_batches"]) or "none"
    console.print(f"tenant {tenant_id}: active={state['active']}; suspended batches: {held}")


@batches_cli.command("suspend")
def batch_suspend(tenant_id: str, batch: Batch = None, url: Url = LOCAL, token: Token = "") -> None:
    """Hold a tenant's messages, or one batch (--batch); they wait, nothing is lost."""
    _suspension("suspend", tenant_id, batch, url, token)


@batches_cli.command("activate")
def batch_activate(
    tenant_id: str, batch: Batch = None, url: Url = LOCAL, token: Token = ""
) -> None:
    """Release a tenant (and all its batches), or one batch (--batch)."""
    _suspension("activate", tenant_id, batch, url, token)
