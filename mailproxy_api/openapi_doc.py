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
from pathlib import Path
from typing import Any

from mailproxy_models.settings import Settings

from .app import create_app

METHODS = ("get", "post", "put", "patch", "delete")
API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"


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


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        resolved: dict[str, Any] = document.get("components", {}).get("schemas", {}).get(name, {})
        return resolved
    return schema


def constraints(document: dict[str, Any], spec: dict[str, Any]) -> str:
    """What a value must be, in words: range, length, pattern, choices, null."""
    if "anyOf" in spec:  # a nullable nested object: its $ref, or null
        refs = [b for b in spec["anyOf"] if "$ref" in b]
        text = ", ".join(f"`{_schema_name(b)}`" for b in refs)
        return text + ("; null clears it" if len(refs) < len(spec["anyOf"]) else "")
    parts = []
    if "enum" in spec:
        parts.append("one of " + ", ".join(f"`{v}`" for v in spec["enum"]))
    if "minimum" in spec or "maximum" in spec:
        parts.append(f"{spec.get('minimum', '-∞')} to {spec.get('maximum', '∞')}")
    if "minLength" in spec or "maxLength" in spec:
        parts.append(f"length {spec.get('minLength', 0)} to {spec.get('maxLength', '∞')}")
    if "minItems" in spec or "maxItems" in spec:
        parts.append(f"{spec.get('minItems', 0)} to {spec.get('maxItems', '∞')} items")
    if "maxProperties" in spec:
        parts.append(f"at most {spec['maxProperties']} entries")
    if spec.get("pattern") and spec["pattern"] != "^[^\\u0000]*$":
        parts.append(f"pattern `` {spec['pattern']} ``")  # double: a pattern may hold a backtick
    if spec.get("type") == "array" and isinstance(spec.get("items"), dict):
        inner = constraints(document, spec["items"])
        if inner:
            parts.append(f"each {inner}")
    if spec.get("nullable"):
        parts.append("null allowed")
    return "; ".join(parts).replace("|", "\\|")


def _fields(document: dict[str, Any], name: str) -> list[str]:
    schema = document.get("components", {}).get("schemas", {}).get(name, {})
    required = set(schema.get("required", []))
    rows = []
    for field, spec in schema.get("properties", {}).items():
        kind = _schema_name(spec) or "any"
        mark = " (required)" if field in required else ""
        rows.append(
            f"| `{field}` | {kind}{mark} | {constraints(document, spec)} "
            f"| {_one_line(spec.get('description'))} |"
        )
    return rows


def nested_schemas(document: dict[str, Any], name: str) -> list[str]:
    """The request schemas a request schema refers to, depth first, each once."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                child = ref.rsplit("/", 1)[-1]
                if child not in found and child != name:
                    found.append(child)
                    walk(document["components"]["schemas"].get(child, {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document.get("components", {}).get("schemas", {}).get(name, {}))
    return found


FIELD_HEADER = ["| field | type | accepted values | description |", "|---|---|---|---|"]


def _operation(document: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", _one_line(op.get("summary")) or "", ""]
    if op.get("description"):
        lines += [_one_line(op.get("description")), ""]
    params = [*document["paths"][path].get("parameters", []), *op.get("parameters", [])]
    if params:
        lines += ["| parameter | in | type | accepted values |", "|---|---|---|---|"]
        for param in params:
            required = " (required)" if param.get("required") else ""
            schema = param.get("schema", {})
            kind = _schema_name(schema)
            lines.append(
                f"| `{param['name']}` | {param['in']} | {kind}{required} "
                f"| {constraints(document, schema)} |"
            )
        lines.append("")
    request_body = op.get("requestBody", {})
    body = request_body.get("content", {}).get("application/json", {})
    if body:
        name = _schema_name(body.get("schema"))
        needed = "required" if request_body.get("required") else "optional"
        lines += [f"Request body ({needed}): `{name}`; unknown fields are refused.", ""]
        fields = _fields(document, name)
        if fields:
            lines += [*FIELD_HEADER, *fields, ""]
        for child in nested_schemas(document, name):
            lines += [f"`{child}`:", "", *FIELD_HEADER, *_fields(document, child), ""]
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
        "Input rules of every operation: a body is strict JSON (no `NaN`/`Infinity`, numbers",
        "finite, integers of at most 4,096 digits, nesting at most 32 deep); unknown fields and",
        "unknown query parameters are refused naming them; no string may contain NUL;",
        "integers are JSON integers (`1.5` is not one), booleans JSON booleans.",
        'Every error is JSON `{"ok": false, "error", "errors"?}`: `400` body not JSON,',
        "missing or (on add-messages and the paged lists) not of the documented shape; `401`",
        "no valid token; `403` the token may not do this (the admin token must name",
        "`tenant_id` where the operation acts on one tenant); `404` no such object (or",
        "another tenant's); `405` method not allowed, with `Allow`; `409` conflict; `413` body",
        "over `MAILPROXY_MAX_REQUEST_BYTES`; `415` body not `application/json`; `422` a field",
        "breaks its rule (`errors` maps each field to why); `431` headers too large.",
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


API_MD_BEGIN = (
    "<!-- accepted-fields:begin (generated: python -m mailproxy_api.openapi_doc api-md) -->"
)
API_MD_END = "<!-- accepted-fields:end -->"


def _field_summary(document: dict[str, Any], name: str, required: set[str]) -> list[str]:
    schema = document.get("components", {}).get("schemas", {}).get(name, {})
    items = []
    for field, spec in schema.get("properties", {}).items():
        if spec.get("readOnly"):
            continue
        rule = constraints(document, spec) or _schema_name(spec)
        mark = "required; " if field in (required or set(schema.get("required", []))) else ""
        items.append(f"`{field}` ({mark}{rule})")
    return items


def render_accepted_fields(document: dict[str, Any]) -> str:
    """The section of docs/api.md listing, per operation, what it accepts and answers."""
    lines = [API_MD_BEGIN, ""]
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            lines.append(f"- **`{method.upper()} {path}`**")
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            for param in params:
                rule = constraints(document, param.get("schema", {}))
                needed = "required; " if param.get("required") else ""
                lines.append(f"  - {param['in']} `{param['name']}` ({needed}{rule or 'any'})")
            body = op.get("requestBody", {})
            content = body.get("content", {}).get("application/json", {})
            if content:
                name = _schema_name(content.get("schema"))
                needed = "required" if body.get("required") else "optional"
                lines.append(
                    f"  - body ({needed}) `{name}`: "
                    + ", ".join(_field_summary(document, name, set()))
                )
                for child in nested_schemas(document, name):
                    lines.append(
                        f"  - `{child}`: " + ", ".join(_field_summary(document, child, set()))
                    )
            codes = ", ".join(f"`{code}`" for code in op.get("responses", {}) if code != "default")
            lines.append(f"  - answers {codes}; errors as in Conventions")
    lines += ["", API_MD_END]
    return "\n".join(lines)


def with_accepted_fields(page: str, document: dict[str, Any]) -> str:
    """docs/api.md with its generated section replaced by the document's current content."""
    before, _, rest = page.partition(API_MD_BEGIN)
    _, _, after = rest.partition(API_MD_END)
    return before + render_accepted_fields(document) + after


def main(argv: list[str]) -> None:
    kind = argv[1] if len(argv) > 1 else "json"
    document = openapi_document()
    if kind == "json":
        sys.stdout.write(render_json(document))
    elif kind == "markdown":
        sys.stdout.write(render_markdown(document))
    elif kind == "api-md":  # rewrites the generated section of docs/api.md in place
        page = API_MD.read_text()
        API_MD.write_text(with_accepted_fields(page, document))
    else:
        raise SystemExit("usage: python -m mailproxy_api.openapi_doc [json|markdown|api-md]")


if __name__ == "__main__":
    main(sys.argv)
