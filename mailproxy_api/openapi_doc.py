"""Renders the OpenAPI document and its reference page for the docs site, so neither drifts.

    python -m mailproxy_api.openapi_doc json > docs/openapi.json
    python -m mailproxy_api.openapi_doc markdown > docs/api-reference.md

The app is built on a throw-away data directory: producing the document touches no real
database or key.
"""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

from mailproxy_models.settings import Settings

from .app import create_app

METHODS = ("get", "post", "put", "patch", "delete")


def openapi_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(Settings(data_dir=data_dir))
        document: dict[str, Any] = app.test_client().get("/openapi.json").get_json()
    return document


def render_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items')) or 'any'}"
    return str(schema.get("type", "object"))


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _fields(document: dict[str, Any], name: str) -> list[str]:
    schema = document.get("components", {}).get("schemas", {}).get(name, {})
    required = set(schema.get("required", []))
    rows = []
    for field, spec in schema.get("properties", {}).items():
        kind = _schema_name(spec) or "any"
        mark = " (required)" if field in required else ""
        rows.append(f"| `{field}` | {kind}{mark} | {_one_line(spec.get('description'))} |")
    return rows


def _operation(document: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", _one_line(op.get("summary")) or "", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type |", "|---|---|---|"]
        for param in params:
            required = " (required)" if param.get("required") else ""
            kind = _schema_name(param.get("schema"))
            lines.append(f"| `{param['name']}` | {param['in']} | {kind}{required} |")
        lines.append("")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        name = _schema_name(body.get("schema"))
        lines += [f"Request body: `{name}`", ""]
        fields = _fields(document, name)
        if fields:
            lines += ["| field | type | description |", "|---|---|---|", *fields, ""]
    answers = []
    for code, answer in op.get("responses", {}).items():
        content = answer.get("content", {}).get("application/json", {})
        schema = _schema_name(content.get("schema"))
        answers.append(f"`{code}`" + (f" `{schema}`" if schema else ""))
    lines += ["Answers: " + ", ".join(answers), ""]
    return lines


def render_markdown(document: dict[str, Any]) -> str:
    info = document["info"]
    lines = [
        "# API reference",
        "",
        f"{info['title']} {info['version']}, OpenAPI {document['openapi']}. This page and",
        "[openapi.json](openapi.json) are generated from the application:",
        "`python -m mailproxy_api.openapi_doc markdown > docs/api-reference.md` (and `json`).",
        "The contract behind them, with the conventions every answer follows, is",
        "[the HTTP contract](api.md). A running instance serves the same document at",
        "`/openapi.json` and Swagger UI at `/docs`.",
        "",
        "Authentication: `X-API-Token: <token>` or `Authorization: Bearer <token>`.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method, path, item[method]))
    lines += ["| method | path | what it does |", "|---|---|---|"]
    for operations in by_tag.values():
        for method, path, op in operations:
            lines.append(f"| {method.upper()} | `{path}` | {_one_line(op.get('summary'))} |")
    lines.append("")
    for tag, operations in by_tag.items():
        lines += [f"## {tag}", ""]
        for method, path, op in operations:
            lines += _operation(document, method, path, op)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> None:
    kind = argv[1] if len(argv) > 1 else "json"
    document = openapi_document()
    if kind == "json":
        sys.stdout.write(render_json(document))
    elif kind == "markdown":
        sys.stdout.write(render_markdown(document))
    else:
        raise SystemExit("usage: python -m mailproxy_api.openapi_doc [json|markdown]")


if __name__ == "__main__":
    main(sys.argv)
