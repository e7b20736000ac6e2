"""`mail-proxy tenants|tokens|accounts|batches ...`: administration through the API of a
running instance (local or remote), with the admin token (accounts: a tenant token too)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .cli_contexts import Token, Url, connect

console = Console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

tenants_cli = typer.Typer(help="Tenants of an instance.", no_args_is_help=True)
tokens_cli = typer.Typer(help="API keys of a tenant.", no_args_is_help=True)
accounts_cli = typer.Typer(help="SMTP accounts of a tenant.", no_args_is_help=True)
batches_cli = typer.Typer(help="Suspend and activate a tenant or a batch.", no_args_is_help=True)
Batch = Annotated[str | None, typer.Option("--batch", help="Only this batch code.")]


def format_ts(ts: int | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def print_rows(rows: list[dict[str, Any]], columns: list[str], as_json: bool, title: str) -> None:
    """A table of the given columns, or with ``--json`` every field of every row."""
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(c, row.get(c)) for c in columns])
    console.print(table)


def _cell(column: str, value: Any) -> str:
    if column.endswith(("_at", "_ts", "_since")) or column == "ts":
        return format_ts(value)
    return "-" if value is None else str(value)


@tenants_cli.command("create")
def tenant_create(
    tenant_id: Annotated[str, typer.Argument(help="Tenant id.")],
    url: Url = None,
    token: Token = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Create a tenant and print its first API key (shown only this once)."""
    body = connect(url, token).call("POST", "/tenant", json={"id": tenant_id, "name": name})
    console.print(f"tenant {tenant_id} created; API key (shown once): {body['api_key']}")


@tenants_cli.command("list")
def tenant_list(url: Url = None, token: Token = None, as_json: AsJson = False) -> None:
    tenants = connect(url, token).call("GET", "/tenants")["tenants"]
    print_rows(tenants, ["id", "name", "active", "created_at"], as_json, "tenants")


@tenants_cli.command("delete")
def tenant_delete(
    tenant_id: str,
    url: Url = None,
    token: Token = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete a tenant with its accounts and messages."""
    if not yes:
        typer.confirm(f"Delete tenant {tenant_id} with all its accounts and messages?", abort=True)
    connect(url, token).call("DELETE", f"/tenant/{tenant_id}")
    console.print(f"tenant {tenant_id} deleted")


@tokens_cli.command("create")
def token_create(
    tenant_id: str,
    url: Url = None,
    token: Token = None,
    name: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after so many days.")] = None,
) -> None:
    """Issue another key for a tenant (old keys stay valid until revoked)."""
    expires_at = None
    if expires_in_days is not None:
        expires_at = int(datetime.now(UTC).timestamp()) + expires_in_days * 86400
    body = connect(url, token).call(
        "POST", f"/tenant/{tenant_id}/api-key", json={"name": name, "expires_at": expires_at}
    )
    console.print(f"API key for {tenant_id} (shown once): {body['api_key']}")


@tokens_cli.command("list")
def token_list(
    tenant_id: str, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    keys = connect(url, token).call("GET", f"/tenant/{tenant_id}/api-keys")["api_keys"]
    columns = ["key_id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    print_rows(keys, columns, as_json, f"API keys of {tenant_id}")


@tokens_cli.command("revoke")
def token_revoke(
    tenant_id: str,
    key_id: Annotated[
        int | None, typer.Argument(help="Key to revoke; all keys if omitted.")
    ] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    client = connect(url, token)
    if key_id is None:
        revoked = client.call("DELETE", f"/tenant/{tenant_id}/api-key")["revoked"]
        console.print(f"{revoked} key(s) of {tenant_id} revoked")
    else:
        client.call("DELETE", f"/tenant/{tenant_id}/api-key/{key_id}")
        console.print(f"key {key_id} of {tenant_id} revoked")


def _suspension(
    action: str, tenant_id: str, batch: str | None, url: str | None, token: str | None
) -> None:
    body: dict[str, Any] = {"tenant_id": tenant_id, **({"batch_code": batch} if batch else {})}
    state = connect(url, token).call("POST", f"/commands/{action}", json=body)
    held = ", ".join(state["suspended_batches"]) or "none"
    console.print(f"tenant {tenant_id}: active={state['active']}; suspended batches: {held}")


@batches_cli.command("suspend")
def batch_suspend(
    tenant_id: str, batch: Batch = None, url: Url = None, token: Token = None
) -> None:
    """Hold a tenant's messages, or one batch (--batch); they wait, nothing is lost."""
    _suspension("suspend", tenant_id, batch, url, token)


@batches_cli.command("activate")
def batch_activate(
    tenant_id: str, batch: Batch = None, url: Url = None, token: Token = None
) -> None:
    """Release a tenant (and all its batches), or one batch (--batch)."""
    _suspension("activate", tenant_id, batch, url, token)


Tenant = Annotated[
    str | None, typer.Option("--tenant", help="Tenant id (needed with the admin token).")
]


def _tenant_query(tenant: str | None) -> dict[str, str]:
    return {"tenant_id": tenant} if tenant else {}


@accounts_cli.command("list")
def account_list(
    tenant: Tenant = None, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    accounts = connect(url, token).call("GET", "/accounts", params=_tenant_query(tenant))
    columns = ["tenant_id", "id", "host", "port", "user", "use_tls", "is_default", "failing_since"]
    print_rows(accounts["accounts"], columns, as_json, "SMTP accounts")


@accounts_cli.command("show")
def account_show(
    account_id: str,
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """One account with every setting (the password never, only whether one is set)."""
    path = f"/account/{account_id}"
    account = connect(url, token).call("GET", path, params=_tenant_query(tenant))["account"]
    if as_json:
        console.print_json(json.dumps(account))
        return
    table = Table(title=f"account {account_id}", show_header=False)
    for key, value in account.items():
        table.add_row(key, _cell(key, value))
    console.print(table)


@accounts_cli.command("add")
def account_add(
    account_id: str,
    host: Annotated[str, typer.Option(help="SMTP server.")],
    port: Annotated[int, typer.Option(help="SMTP port.")] = 587,
    user: Annotated[str | None, typer.Option(help="Login.")] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="MAILPROXY_SMTP_PASSWORD", help="Password (stored encrypted)."),
    ] = None,
    tls: Annotated[
        str, typer.Option(help="implicit (SMTPS), starttls (if offered) or none.")
    ] = "starttls",
    default: Annotated[bool, typer.Option("--default", help="The tenant's default.")] = False,
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Create an account, or update the one with this id."""
    modes = {"implicit": True, "starttls": None, "none": False}
    if tls not in modes:
        raise typer.BadParameter("one of implicit, starttls, none", param_hint="--tls")
    body: dict[str, Any] = {"id": account_id, "host": host, "port": port, "use_tls": modes[tls]}
    body.update({k: v for k, v in {"user": user, "password": password}.items() if v is not None})
    if default:
        body["is_default"] = True
    if tenant:
        body["tenant_id"] = tenant
    account = connect(url, token).call("POST", "/account", json=body)["account"]
    console.print(f"account {account['id']} of {account['tenant_id']} saved")


@accounts_cli.command("delete")
def account_delete(
    account_id: str, tenant: Tenant = None, url: Url = None, token: Token = None
) -> None:
    connect(url, token).call("DELETE", f"/account/{account_id}", params=_tenant_query(tenant))
    console.print(f"account {account_id} deleted")
