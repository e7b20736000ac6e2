"""`mail-proxy suppressions list|add|remove`: the tenant's suppression list through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .cli_admin import AsJson, Tenant, console, print_rows
from .cli_contexts import Token, Url, connect

suppressions_cli = typer.Typer(
    help="Addresses refused for a tenant (hard bounces, or added by hand).", no_args_is_help=True
)


def _scope(tenant: str | None) -> dict[str, Any]:
    return {"tenant_id": tenant} if tenant else {}


@suppressions_cli.command("list")
def suppression_list(
    tenant: Tenant = None, url: Url = None, token: Token = None, as_json: AsJson = False
) -> None:
    """Every suppressed address, in address order (all pages)."""
    client = connect(url, token)
    rows: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {**_scope(tenant), "limit": 1000, **({"after": after} if after else {})}
        page = client.call("GET", "/suppressions", params=params)
        rows += page["suppressions"]
        after = page["next_after"]
        if after is None:
            break
    columns = ["address", "source", "reason", "message_id", "created_at"]
    print_rows(rows, columns, as_json, "suppression list")


@suppressions_cli.command("add")
def suppression_add(
    addresses: Annotated[list[str], typer.Argument(help="Addresses to refuse.")],
    reason: Annotated[str | None, typer.Option(help="Why, shown in refusals.")] = None,
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
) -> None:
    body = {"addresses": addresses, "reason": reason, **_scope(tenant)}
    answer = connect(url, token).call("POST", "/suppressions", json=body)
    console.print(f"{answer['added']} added", highlight=False)
    for address in answer["already_listed"]:
        console.print(f"  already listed: {address}", highlight=False)


@suppressions_cli.command("remove")
def suppression_remove(
    address: Annotated[str, typer.Argument(help="Address to accept again.")],
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Accept messages to the address again (exit 1 if it was not listed)."""
    connect(url, token).call("DELETE", f"/suppression/{address}", params=_scope(tenant))
    console.print(f"{address} removed from the suppression list", highlight=False)
