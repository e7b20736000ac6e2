"""Service endpoints and the OpenAPI document."""

from __future__ import annotations

from tests.support.stack import make_messages


def test_health_needs_no_token(stack):
    assert stack.client.get("/health").json == {"ok": True}


def test_status_reports_waiting_messages_per_priority(stack):
    key = stack.setup_tenant(2525)
    stack.call(
        "POST",
        "/commands/add-messages",
        token=key,
        json={"messages": make_messages(2) + make_messages(1, prefix="U", priority=0)},
    )
    status = stack.call("GET", "/status", token=key).json
    assert status["queue_depth"] == {"immediate": 1, "high": 0, "medium": 2, "low": 0}
    assert status["ok"] and status["version"]


def test_openapi_document_and_swagger_ui_are_served_without_outside_assets(stack):
    spec = stack.client.get("/openapi.json").json
    for path in ("/commands/add-messages", "/messages", "/tenant", "/account", "/health"):
        assert path in spec["paths"]
    page = stack.client.get("/docs").get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in page and "//cdn" not in page
    assert stack.client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_unknown_path_is_a_json_404(stack):
    answer = stack.client.get("/no/such/path")
    assert answer.status_code == 404 and answer.json["ok"] is False


def test_wrong_method_is_a_json_405(stack):
    answer = stack.client.delete("/health")
    assert answer.status_code == 405 and answer.json["ok"] is False
