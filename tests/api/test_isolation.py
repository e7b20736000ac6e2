"""Tenant isolation, proven over every operation of the OpenAPI document.

For each operation, tenant B's token is used on tenant A's objects: A's ids in the path,
``tenant_id=A`` in the query and body, A's message ids, account id and batch code. Each
such call must answer 403 or 404. Each operation is also called "by listing" (no tenant
named): the answer must not carry any of A's data. Afterwards A's data is unchanged. The
calls are generated from the document, so a new endpoint is covered without editing this
test; a new required field only needs a sample value below if its name is unusual.
"""

from __future__ import annotations

import re
from typing import Any

from mailproxy_models.db import now, session_scope
from mailproxy_models.inbound import InboundFacts, record_inbound_mail
from tests.support.stack import Stack

ALPHA_SECRETS = {
    "tenant name": "Alpha Corporation Confidential",
    "account host": "alpha-smtp.internal.example",
    "smtp password": "alpha-smtp-password-31337",
    "client password": "alpha-client-password-4242",
    "subject": "Alpha quarterly secret numbers",
    "client url": "http://alpha-app.internal.example/app",
    "returned mail": "Subject: Alpha's bounce from secret-partner.example",
}
ALPHA_IDS = {
    "tenant_id": "alpha",
    "account_id": "main",
    "msg_id": "ALPHA-MSG-1",
    "batch_code": "alpha-batch",
}


def _seed(stack: Stack) -> tuple[str, str, int]:
    alpha = stack.call(
        "POST",
        "/tenant",
        json={
            "id": "alpha",
            "name": ALPHA_SECRETS["tenant name"],
            "client_base_url": ALPHA_SECRETS["client url"],
            "client_auth": {
                "method": "basic",
                "user": "u",
                "password": ALPHA_SECRETS["client password"],
            },
        },
    ).json["api_key"]
    stack.call(
        "POST",
        "/account",
        token=alpha,
        json={
            "id": "main",
            "host": ALPHA_SECRETS["account host"],
            "port": 2525,
            "user": "alpha",
            "password": ALPHA_SECRETS["smtp password"],
        },
    )
    messages = [
        {
            "id": f"ALPHA-MSG-{i}",
            "from": "a@alpha.example",
            "to": ["x@example.org"],
            "subject": ALPHA_SECRETS["subject"],
            "batch_code": "alpha-batch",
        }
        for i in (1, 2)
    ]
    assert (
        stack.call("POST", "/commands/add-messages", token=alpha, json={"messages": messages}).json[
            "queued"
        ]
        == 2
    )
    # A mail read from alpha's bounce mailbox, in its inbound log.
    with session_scope(stack.app.extensions["mailproxy"].sessions) as session:
        facts = InboundFacts("not_recognised", ALPHA_SECRETS["returned mail"])
        record_inbound_mail(session, "alpha", "main", "a" * 64, facts, now())
    alpha_key_id = stack.call("GET", "/tenant/alpha/api-keys").json["api_keys"][0]["key_id"]
    beta = stack.setup_tenant(2526, tenant_id="beta", account={"id": "beta-main"})
    return alpha, beta, alpha_key_id


def _sample(name: str, schema: dict[str, Any], spec: dict[str, Any], target: bool) -> Any:
    """A value for a field: A's identifiers when ``target``, else something valid and neutral."""
    if "$ref" in schema:
        schema = _resolve(spec, schema["$ref"])
    if target and name in ALPHA_IDS:
        return ALPHA_IDS[name]
    if target and name == "id":
        return "main"  # A's account id; as a tenant id it is unknown to both
    if target and name == "ids":
        return ["ALPHA-MSG-1"]
    if name == "addresses":
        return ["probe@example.org"]
    if name == "messages":
        return [
            {
                "id": "B-1",
                "from": "b@beta.example",
                "to": ["y@example.org"],
                "subject": "s",
                **({"tenant_id": "alpha"} if target else {}),
            }
        ]
    known = {"host": "127.0.0.1", "port": 2525, "id": "beta-probe", "method": "none"}
    if name in known:
        return known[name]
    kind = schema.get("type")
    if kind == "object":
        return _body(schema, spec, target)
    return {"integer": 1, "number": 1, "boolean": False, "array": []}.get(kind, "probe")


def _resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


def _body(schema: dict[str, Any], spec: dict[str, Any], target: bool) -> dict[str, Any]:
    if "$ref" in schema:
        schema = _resolve(spec, schema["$ref"])
    properties = schema.get("properties", {})
    wanted = set(schema.get("required", [])) | ({"tenant_id", "ids", "id"} & set(properties))
    return {
        name: _sample(name, properties[name], spec, target)
        for name in properties
        if name in wanted and not properties[name].get("readOnly")
    }


def _operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                yield path, method, operation


def _request(path: str, operation: dict[str, Any], spec: dict[str, Any], target: bool):
    url = re.sub(r"\{(\w+)\}", lambda m: str(ALPHA_IDS.get(m.group(1), m.group(1))), path)
    query = {}
    for parameter in operation.get("parameters", []):
        if (
            parameter["in"] == "query"
            and parameter["name"] in ALPHA_IDS
            and (target or parameter["name"] == "batch_code")
        ):
            query[parameter["name"]] = ALPHA_IDS[parameter["name"]]
    body = None
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        body = _body(content["application/json"]["schema"], spec, target)
    return url, query, body


def _names_alpha(path: str, query: dict[str, Any], body: Any) -> bool:
    return bool(re.search(r"\{(tenant_id|account_id|msg_id|key_id)\}", path)) or bool(
        query.get("tenant_id") or (isinstance(body, dict) and "alpha" in repr(body))
    )


def test_tenant_b_gets_nothing_of_tenant_a_from_any_operation(stack):
    alpha_key, beta_key, alpha_key_id = _seed(stack)
    ALPHA_IDS["key_id"] = str(alpha_key_id)
    spec = stack.client.get("/openapi.json").json
    before = stack.call(
        "GET", "/messages", token=alpha_key, query_string={"include_history": "true"}
    ).json
    checked, failures = 0, []
    for path, method, operation in _operations(spec):
        for target in (True, False):
            url, query, body = _request(path, operation, spec, target)
            answer = stack.call(
                method.upper(),
                url,
                token=beta_key,
                query_string=query,
                **({"json": body} if body is not None else {}),
            )
            text = answer.get_data(as_text=True)
            checked += 1
            leaked = [what for what, secret in ALPHA_SECRETS.items() if secret in text]
            if leaked:
                failures.append(f"{method.upper()} {url} {query} {body}: leaks {leaked}")
            if (target or "{" in path) and _names_alpha(path, query, body):
                if answer.status_code not in (403, 404):
                    failures.append(
                        f"{method.upper()} {url} {query} {body}: {answer.status_code} {text[:200]}"
                    )
    assert not failures, "\n".join(failures)
    assert checked >= 2 * 20
    after = stack.call(
        "GET", "/messages", token=alpha_key, query_string={"include_history": "true"}
    ).json
    assert after == before
    account = stack.call("GET", "/account/main", token=alpha_key).json["account"]
    assert account["host"] == ALPHA_SECRETS["account host"] and account["has_password"]
    tenant = stack.call("GET", "/tenant/alpha", token=alpha_key).json["tenant"]
    assert tenant["name"] == ALPHA_SECRETS["tenant name"]
