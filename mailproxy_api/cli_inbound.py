"""`mail-proxy inbound list`: the log of mail read from bounce and receipt mailboxes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .cli_admin import AsJson, Tenant, print_rows
from .cli_contexts import Token, Url, connect

inbound_cli = typer.Typer(
    help="Mail read from bounce and receipt mailboxes, and what became of it.",
    no_args_is_help=True,
)
PAGE = 1000


@inbound_cli.command("list")
def inbound_list(
    account: Annotated[str | None, typer.Option(help="Only this account's mailbox.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="bounce, pec_receipt, auto_reply, not_recognised, ...")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option(help="recorded, uncorrelated (no such message) or ignored.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    tenant: Tenant = None,
    url: Url = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """The newest mail read, with what it was taken for and the message it was about."""
    client = connect(url, token)
    filters = {"tenant_id": tenant, "account_id": account, "kind": kind, "outcome": outcome}
    params: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while len(rows) < limit:
        page_size = min(PAGE, limit - len(rows))
        page = client.call(
            "GET",
            "/inbound-mail",
            params={**params, "limit": page_size, **({"cursor": cursor} if cursor else {})},
        )
        rows += page["inbound_mail"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    columns = ["received_at", "account_id", "kind", "outcome", "message_id", "summary"]
    print_rows(rows, columns, as_json, "mail read from mailboxes")
