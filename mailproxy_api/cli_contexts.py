"""Which mailproxy the command line talks to: saved contexts (URL + token by name) and the
rule that picks one for a command (flag, then environment, then the current context).

The contexts file holds tokens, so it is written with mode 0600 and replaced atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .api_client import ApiClient

LOCAL = "http://127.0.0.1:8000"
console = Console()


class CliUsageError(Exception):
    """The command was asked for something that cannot be (exit code 2: fix the command)."""


@dataclass(frozen=True)
class Context:
    name: str
    url: str
    token: str


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with a file only its owner can read (it holds tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def contexts_path() -> Path:
    """``$MAILPROXY_CLI_CONFIG``, else ``contexts.json`` in the user's config directory."""
    override = os.environ.get("MAILPROXY_CLI_CONFIG")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mailproxy" / "contexts.json"


class ContextStore:
    """Saved contexts and which one is current, in one JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or contexts_path()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"current": None, "contexts": {}}
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except ValueError as exc:
            raise RuntimeError(f"{self.path} is not a contexts file (invalid JSON)") from exc
        data.setdefault("current", None)
        data.setdefault("contexts", {})
        return data

    def _save(self, data: dict[str, Any]) -> None:
        write_private_json(self.path, data)

    def all(self) -> tuple[list[Context], str | None]:
        data = self._load()
        contexts = [Context(name, c["url"], c["token"]) for name, c in data["contexts"].items()]
        return sorted(contexts, key=lambda c: c.name), data["current"]

    def get(self, name: str) -> Context:
        data = self._load()
        if name not in data["contexts"]:
            raise CliUsageError(f"no context named '{name}' (see: mail-proxy context list)")
        saved = data["contexts"][name]
        return Context(name, saved["url"], saved["token"])

    def current(self) -> Context | None:
        name = self._load()["current"]
        return self.get(name) if name else None

    def save(self, context: Context, make_current: bool = False) -> None:
        data = self._load()
        data["contexts"][context.name] = {"url": context.url, "token": context.token}
        if make_current or data["current"] is None:
            data["current"] = context.name
        self._save(data)

    def use(self, name: str) -> None:
        self.get(name)
        data = self._load()
        data["current"] = name
        self._save(data)

    def delete(self, name: str) -> bool:
        data = self._load()
        if data["contexts"].pop(name, None) is None:
            return False
        if data["current"] == name:
            data["current"] = None
        self._save(data)
        return True


Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MAILPROXY_URL",
        help="Base URL of the mailproxy API (default: the current context, else " + LOCAL + ").",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=["MAILPROXY_TOKEN", "MAILPROXY_ADMIN_TOKEN"],
        help="API token, admin or tenant (default: the current context's).",
        show_default=False,
    ),
]
# Set by ``mail-proxy --context NAME ...``: that saved context instead of the current one.
selected_context: str | None = None


def connect(url: str | None, token: str | None) -> ApiClient:
    """A client of the API chosen by flag or environment, else by the (current) context."""
    store = ContextStore()
    saved = store.get(selected_context) if selected_context else None
    if saved is None and (url is None or token is None):
        saved = store.current()
    if saved is not None and url is not None and url.rstrip("/") != saved.url.rstrip("/"):
        saved = None  # another instance: the saved token is not for it
    return ApiClient(
        url or (saved.url if saved else LOCAL), token or (saved.token if saved else "")
    )


context_cli = typer.Typer(
    help="Saved connections (URL + token) to local or remote instances.", no_args_is_help=True
)


@context_cli.command("save")
def context_save(
    name: str,
    url: Annotated[str, typer.Option("--url", help="Base URL of the API.")],
    token: Annotated[str, typer.Option("--token", help="API token.", show_default=False)],
    use: Annotated[bool, typer.Option("--use/--no-use", help="Make it the current one.")] = True,
) -> None:
    """Save (or replace) a context; it becomes the current one unless --no-use."""
    ContextStore().save(Context(name, url.rstrip("/"), token), make_current=use)
    console.print(f"context {name} saved{' (current)' if use else ''}")


@context_cli.command("use")
def context_use(name: str) -> None:
    """Make a saved context the current one."""
    ContextStore().use(name)
    console.print(f"now using context {name}")


@context_cli.command("list")
def context_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Saved contexts (tokens are never printed)."""
    contexts, current = ContextStore().all()
    rows: list[dict[str, Any]] = [
        {"name": c.name, "url": c.url, "current": c.name == current} for c in contexts
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"contexts ({contexts_path()})")
    for column in ("", "name", "url"):
        table.add_column(column)
    for row in rows:
        table.add_row("*" if row["current"] else "", str(row["name"]), str(row["url"]))
    console.print(table)


@context_cli.command("delete")
def context_delete(name: str) -> None:
    if not ContextStore().delete(name):
        raise LookupError(f"no context named '{name}'")
    console.print(f"context {name} deleted")
