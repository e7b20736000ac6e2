"""A Flask application using mailproxy: sends mail, receives delivery reports.

    flask --app app send alice@example.org     # queue one message through mailproxy
    flask --app app run --port 8080            # receive POST /proxy_sync from mailproxy

Settings (environment): MAILPROXY_URL (default http://127.0.0.1:8000), MAILPROXY_API_KEY
(the tenant's key), MAILPROXY_ACCOUNT (SMTP account id, default "main"), SYNC_TOKEN (the
bearer token mailproxy sends with reports: the tenant's client_auth; unset = no check).
Needs flask and requests.
"""

from __future__ import annotations

import hmac
import os
import uuid

import click
import requests
from flask import Flask, jsonify, request

app = Flask(__name__)
app.config.from_prefixed_env("MAILPROXY")  # MAILPROXY_URL -> app.config["URL"], ...


def mailproxy_url() -> str:
    return str(app.config.get("URL", "http://127.0.0.1:8000")).rstrip("/")


def send_order_mail(to: str, order: str) -> dict:
    """Queue one message; mailproxy answers at once and delivers in the background."""
    message = {
        "id": f"order-{order}-{uuid.uuid4().hex[:8]}",
        "account_id": str(app.config.get("ACCOUNT", "main")),
        "from": "Shop <shop@example.com>",
        "to": [to],
        "subject": f"Your order {order}",
        "body": f"Order {order} ships today.",
    }
    answer = requests.post(
        f"{mailproxy_url()}/commands/add-messages",
        json={"messages": [message]},
        headers={"Authorization": f"Bearer {app.config['API_KEY']}"},
        timeout=30,
    )
    answer.raise_for_status()
    result = answer.json()
    if result["rejected"]:
        raise RuntimeError(f"mailproxy refused the message: {result['rejected']}")
    return result


@app.cli.command("send")
@click.argument("to")
@click.option("--order", default="1001")
def send_command(to: str, order: str) -> None:
    """Queue an order confirmation to TO."""
    click.echo(send_order_mail(to, order))


@app.post("/proxy_sync")
def proxy_sync():
    """mailproxy's delivery reports: {"delivery_report": [...]} in, {"ok": true} out."""
    token = os.environ.get("SYNC_TOKEN")
    if token and not hmac.compare_digest(
        request.headers.get("Authorization", ""), f"Bearer {token}"
    ):
        return jsonify(ok=False, error="bad token"), 401
    body = request.get_json(silent=True) or {}
    for entry in body.get("delivery_report", []):
        # Update your own records here (order mail sent, bounced, ...).
        app.logger.warning("report %s %s", entry["id"], sorted(entry))
    return jsonify(ok=True)
