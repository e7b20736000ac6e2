"""/metrics counts the accounts whose server refused their credentials, per tenant."""

from __future__ import annotations

from mailproxy_models.accounts import Account
from mailproxy_models.db import now, session_scope
from tests.api.test_metrics import samples
from tests.support.stack import Stack


def test_failing_accounts_are_counted_per_tenant(tmp_path, sqlite_url):
    stack = Stack(tmp_path, sqlite_url, None)
    try:
        stack.setup_tenant(2525, "acme", {"id": "main"})
        stack.setup_tenant(2525, "beta", {"id": "main"})
        answer = stack.call(
            "POST",
            "/account",
            json={
                "tenant_id": "acme",
                "id": "second",
                "host": "127.0.0.1",
                "port": 2526,
                "use_tls": False,
            },
        )
        assert answer.status_code == 200, answer.json
        with session_scope(stack.app.extensions["mailproxy"].sessions) as session:
            account = session.get(Account, ("acme", "second"))
            account.failing_since = now()
            account.failing_reason = "535 5.7.8 Authentication credentials invalid"
        scraped = samples(stack.client.get("/metrics").data.decode())
        assert scraped[("mailproxy_accounts_failing", (("tenant", "acme"),))] == 1
        assert scraped[("mailproxy_accounts_failing", (("tenant", "beta"),))] == 0
    finally:
        stack.stop()
