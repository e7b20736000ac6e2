"""No silent acceptance: unknown fields, nulls, numbers out of range, malformed JSON, bad
cursors and ids are refused with a JSON 4xx naming what is wrong; never a 500, never kept."""

from __future__ import annotations

import base64
import json
import socket
import stat
import threading
import time

import pytest
from werkzeug.serving import make_server

from mailproxy_models.instance import open_instance
from mailproxy_models.settings import Settings
from tests.support.stack import ADMIN_TOKEN, make_messages


def _raw(stack, method: str, path: str, body: str | bytes, token: str = ADMIN_TOKEN):
    return stack.client.open(
        path,
        method=method,
        data=body,
        headers={"X-API-Token": token, "Content-Type": "application/json"},
    )


def _assert_json_error(answer, *statuses: int) -> None:
    assert answer.status_code in statuses, (answer.status_code, answer.get_data(as_text=True))
    assert answer.is_json and answer.json["ok"] is False and answer.json["error"]


# -- unknown fields and null -------------------------------------------------------------


def test_seed_spelling_username_is_refused_naming_user(stack, tenant_key):
    body = {"id": "second", "host": "127.0.0.1", "port": 2525, "username": "me"}
    answer = stack.call("POST", "/account", token=tenant_key, json=body)
    _assert_json_error(answer, 422)
    assert "username" in answer.json["errors"]
    assert "`user`" in answer.json["errors"]["username"][0]
    assert stack.call("GET", "/account/second", token=tenant_key).status_code == 404


def test_unknown_fields_are_refused_in_bodies_and_queries(stack, tenant_key):
    answer = stack.call("PUT", "/tenant/acme", token=tenant_key, json={"colour": "red"})
    _assert_json_error(answer, 422)
    assert "colour" in answer.json["errors"]
    answer = stack.call("GET", "/messages?statuss=sent", token=tenant_key)
    _assert_json_error(answer, 400)
    assert "statuss" in answer.json["errors"]
    nested = {"large_file_config": {"enabled": True, "max_size": 3}}
    _assert_json_error(stack.call("PUT", "/tenant/acme", token=tenant_key, json=nested), 422)


def test_null_clears_a_nullable_tenant_field(stack, tenant_key):
    url = {"client_base_url": "http://127.0.0.1:9/app"}
    assert stack.call("PUT", "/tenant/acme", token=tenant_key, json=url).status_code == 200
    answer = stack.call("PUT", "/tenant/acme", token=tenant_key, json={"client_base_url": None})
    assert answer.status_code == 200 and answer.json["tenant"]["client_base_url"] is None
    shown = stack.call("GET", "/tenant/acme", token=tenant_key).json["tenant"]
    assert shown["client_base_url"] is None


def test_null_is_refused_where_a_field_cannot_be_empty(stack, tenant_key):
    answer = stack.call("PUT", "/tenant/acme", token=tenant_key, json={"client_sync_path": None})
    _assert_json_error(answer, 422)
    assert "client_sync_path" in answer.json["errors"]


def test_put_without_a_body_is_a_400(stack, tenant_key):
    answer = stack.client.open("/tenant/acme", method="PUT", headers={"X-API-Token": tenant_key})
    _assert_json_error(answer, 400)


def test_booleans_are_json_booleans(stack, tenant_key):
    answer = stack.call("PUT", "/tenant/acme", token=tenant_key, json={"active": 0})
    _assert_json_error(answer, 422)
    assert stack.call("GET", "/tenant/acme", token=tenant_key).json["tenant"]["active"] is True


def test_empty_client_base_url_is_refused(stack, tenant_key):
    answer = stack.call("PUT", "/tenant/acme", token=tenant_key, json={"client_base_url": ""})
    _assert_json_error(answer, 422)


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["1e308", "Infinity", "NaN", "-1", "1e999"])
def test_large_file_config_numbers_are_finite_and_in_range(stack, tenant_key, size):
    body = '{"large_file_config": {"enabled": true, "max_size_mb": ' + size + "}}"
    _assert_json_error(_raw(stack, "PUT", "/tenant/acme", body, tenant_key), 400, 422)
    answer = stack.call("GET", "/tenant/acme", token=tenant_key)
    json.loads(answer.get_data(as_text=True))  # strict JSON: no bare Infinity
    assert answer.json["tenant"]["large_file_config"] is None


def test_rate_limits_are_typed_and_bounded(stack, tenant_key):
    good = {"rate_limits": {"per_minute": 60, "per_day": None}}
    assert stack.call("PUT", "/tenant/acme", token=tenant_key, json=good).status_code == 200
    for bad in ({"per_minute": 10**30}, {"per_minute": 0}, {"per_second": 5}):
        answer = stack.call("PUT", "/tenant/acme", token=tenant_key, json={"rate_limits": bad})
        _assert_json_error(answer, 422)
    many = {"rate_limits": {f"k{i}": {} for i in range(50_000)}}
    _assert_json_error(
        stack.call("PUT", "/tenant/acme", token=tenant_key, json=many), 400, 413, 422
    )


def test_account_limit_of_ten_to_the_thirty_is_refused(stack, tenant_key):
    body = {"id": "main", "limit_per_minute": 10**30}
    _assert_json_error(stack.call("POST", "/account", token=tenant_key, json=body), 422)


@pytest.mark.parametrize("expires_at", ["2e-282", "1.5", "1", '"soon"'])
def test_api_key_expiry_is_a_future_integer(stack, tenant_key, expires_at):
    body = '{"expires_at": ' + expires_at + "}"
    _assert_json_error(_raw(stack, "POST", "/tenant/acme/api-key", body), 422)
    keys = stack.call("GET", "/tenant/acme/api-keys").json["api_keys"]
    assert len(keys) == 1  # none was made


def test_an_integer_of_5000_digits_is_a_400(stack, tenant_key):
    body = '{"expires_at": %s}' % ("9" * 5000)
    _assert_json_error(_raw(stack, "POST", "/tenant/acme/api-key", body), 400)
    body = '{"messages": [], "default_priority": %s}' % ("1" * 5000)
    _assert_json_error(_raw(stack, "POST", "/commands/add-messages", body, tenant_key), 400)


def test_huge_api_key_id_is_a_404(stack, tenant_key):
    answer = stack.call("DELETE", "/tenant/acme/api-key/99999999999999999999999999")
    _assert_json_error(answer, 404)


# -- JSON size and depth --------------------------------------------------------------------


def test_json_nested_100000_deep_is_a_400(stack, tenant_key):
    body = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    _assert_json_error(_raw(stack, "POST", "/commands/add-messages", body, tenant_key), 400)
    body = '{"name": ' + '{"a":' * 40 + "1" + "}" * 40 + "}"
    _assert_json_error(_raw(stack, "PUT", "/tenant/acme", body, tenant_key), 400)


def test_50000_headers_are_refused_without_a_server_error(stack, tenant_key):
    message = make_messages(1)[0]
    message["headers"] = {f"X-H-{i}": "v" for i in range(50_000)}
    answer = stack.call(
        "POST", "/commands/add-messages", token=tenant_key, json={"messages": [message]}
    )
    assert answer.status_code < 500 and answer.is_json
    if answer.status_code == 200:
        assert answer.json["queued"] == 0 and answer.json["rejected"]


def test_a_body_over_the_size_limit_is_a_json_413(stack, tenant_key):
    limit = stack.settings.max_request_bytes
    body = b'{"messages": ["' + b"x" * limit + b'"]}'
    _assert_json_error(_raw(stack, "POST", "/commands/add-messages", body, tenant_key), 413)


# -- cursors ------------------------------------------------------------------------------


def _old_style(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/messages", "/audit-log", "/inbound-mail"])
@pytest.mark.parametrize("cursor", [_old_style(10**30), _old_style(-5), "garbage", "A" * 12])
def test_a_bad_cursor_is_a_400(stack, tenant_key, path, cursor):
    answer = stack.call("GET", path, token=tenant_key, query_string={"cursor": cursor})
    _assert_json_error(answer, 400)
    assert "cursor" in answer.json["error"]


@pytest.mark.parametrize("path", ["/messages", "/audit-log", "/inbound-mail"])
def test_every_well_formed_cursor_is_a_position(stack, tenant_key, path):
    for raw in (b"\xff" * 8, b"\x7f" + b"\xff" * 7, b"\x00" * 8):
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        answer = stack.call("GET", path, token=tenant_key, query_string={"cursor": cursor})
        assert answer.status_code == 200, answer.json


# -- HTTP -----------------------------------------------------------------------------------


def test_405_names_the_allowed_methods(stack):
    answer = stack.client.delete("/health")
    _assert_json_error(answer, 405)
    assert "GET" in answer.headers["Allow"]
    answer = stack.call("PATCH", "/tenant/acme")
    assert answer.status_code == 405 and set(answer.headers["Allow"].split(", ")) >= {
        "GET",
        "PUT",
        "DELETE",
    }


def test_a_header_over_64_kb_is_a_json_431(stack):
    # The embedded server (mail-proxy start) answers this itself, before the application.
    from mailproxy_api.errors import JsonErrorRequestHandler

    server = make_server(
        "127.0.0.1", 0, stack.app, threaded=True, request_handler=JsonErrorRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as conn:
            big = "x" * 70_000
            conn.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n".encode())
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    finally:
        server.shutdown()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 431") or head.startswith(b"HTTP/1.1 431"), head
    assert b"application/json" in head
    assert json.loads(body)["ok"] is False


@pytest.mark.parametrize(
    "host", ["mail.example.com\r\nRCPT TO:<x@y>", "a b", "", "-x.example", "x" * 300]
)
def test_account_host_must_be_a_host_name(stack, tenant_key, host):
    body = {"id": "other", "host": host, "port": 25}
    _assert_json_error(stack.call("POST", "/account", token=tenant_key, json=body), 422)
    body = {"id": "main", "imap_host": host}
    _assert_json_error(stack.call("POST", "/account", token=tenant_key, json=body), 422)


def test_a_bounce_address_longer_than_its_column_is_refused(stack, tenant_key):
    address = "b@" + ".".join(["x" * 60] * 5) + ".example"  # 318 characters
    body = {"id": "main", "bounce_address": address}
    answer = stack.call("POST", "/account", token=tenant_key, json=body)
    _assert_json_error(answer, 422)
    assert "bounce_address" in answer.json["errors"]


def test_an_update_of_a_missing_account_is_a_404_saying_how_to_create_it(stack, tenant_key):
    answer = stack.call("POST", "/account", token=tenant_key, json={"id": "nope", "ttl": 5})
    _assert_json_error(answer, 404)
    assert "host and port" in answer.json["error"]


def test_the_admin_token_must_name_the_tenant(stack, tenant_key):
    answer = stack.call("POST", "/account", json={"id": "x", "host": "h.example", "port": 25})
    _assert_json_error(answer, 403)
    assert "tenant_id" in answer.json["error"]


# -- data at rest ---------------------------------------------------------------------------


def test_data_directory_and_sqlite_files_are_private(tmp_path):
    data_dir = tmp_path / "fresh" / "data"
    instance = open_instance(Settings(data_dir=data_dir, admin_token="t" * 32))
    with instance.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.commit()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("mailproxy.sqlite", "broker.sqlite", "encryption.key"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    wal = data_dir / "mailproxy.sqlite-wal"
    if wal.exists():
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    instance.engine.dispose()


def test_a_recreated_tenant_does_not_see_the_audit_of_the_deleted_one(stack, tenant_key):
    stack.call("PUT", "/tenant/acme", token=tenant_key, json={"name": "Old secret name"})
    assert stack.call("DELETE", "/tenant/acme").status_code == 200
    time.sleep(0.01)
    fresh = stack.setup_tenant(2525)
    entries = stack.call("GET", "/audit-log", token=fresh).json["entries"]
    assert entries, "the new tenant's own creation is listed"
    assert all(e["action"] != "tenant.delete" for e in entries)
    assert not any("Old secret name" in json.dumps(e) for e in entries)
    # The admin still reads the whole trail of the id.
    admin = stack.call("GET", "/audit-log", query_string={"tenant_id": "acme"}).json["entries"]
    assert any(e["action"] == "tenant.delete" for e in admin)
