"""docs/api.md and docs/api-reference.md state what the OpenAPI document states: every
operation with its parameters, body fields and their accepted values, and its answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailproxy_api.openapi_doc import (
    METHODS,
    nested_schemas,
    openapi_document,
    render_markdown,
    with_accepted_fields,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def document():
    return openapi_document()


def test_api_md_lists_what_every_operation_accepts(document):
    page = (DOCS / "api.md").read_text()
    assert page == with_accepted_fields(page, document), (
        "regenerate: python -m mailproxy_api.openapi_doc api-md"
    )


def test_api_reference_is_the_document(document):
    assert (DOCS / "api-reference.md").read_text() == render_markdown(document), (
        "regenerate: python -m mailproxy_api.openapi_doc markdown > docs/api-reference.md"
    )


def test_every_field_parameter_and_answer_is_in_both_pages(document):
    pages = [(DOCS / "api.md").read_text(), (DOCS / "api-reference.md").read_text()]
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            names = [p["name"] for p in [*item.get("parameters", []), *op.get("parameters", [])]]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if body:
                root = body["schema"]["$ref"].rsplit("/", 1)[-1]
                for name in [root, *nested_schemas(document, root)]:
                    names += list(schemas[name].get("properties", {}))
            for page in pages:
                assert f"{method.upper()} {path}" in page
                for name in names:
                    assert f"`{name}`" in page, (method, path, name)
                for code in op.get("responses", {}):
                    assert f"`{code}`" in page or code == "default"


def test_every_number_in_a_request_has_a_range(document):
    """A number without bounds is what let 1e308 and 10**30 in."""
    unbounded = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number") and not (
                "minimum" in node and "maximum" in node
            ):
                unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    for name, schema in document["components"]["schemas"].items():
        if name.endswith(("In", "Update", "Query", "Schema")) or name in (
            "ClientAuth",
            "RateLimits",
            "LargeFileConfig",
            "AddMessages",
            "DeleteMessages",
            "RetryMessages",
            "Cleanup",
            "RunNow",
            "Suspension",
            "SuppressionAdd",
        ):
            walk(schema, name)
    for path, item in document["paths"].items():
        for method in METHODS:
            for param in item.get(method, {}).get("parameters", []) + item.get("parameters", []):
                walk(param.get("schema", {}), f"{method} {path} {param['name']}")
    assert unbounded == []
