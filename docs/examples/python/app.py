"""A plain Python application using mailproxy: sends mail, receives delivery reports.

    python app.py send alice@example.org      # queue one message through mailproxy
    python app.py serve --port 8080           # receive POST /proxy_sync from mailproxy

Settings (environment): MAILPROXY_URL (default http://127.0.0.1:8000), MAILPROXY_API_KEY
(the tenant's key), MAILPROXY_ACCOUNT (SMTP account id, default "main"), SYNC_TOKEN (the
bearer token mailproxy sends with reports: the tenant's client_auth; unset = no check).
Needs only the requests package.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

MAILPROXY_URL = os.environ.get("MAILPROXY_URL", "http://127.0.0.1:8000").rstrip("/")


def send_order_mail(to: str, order: str) -> dict:
    """Queue one message; mailproxy answers at once and delivers in the background."""
    message = {
        "id": f"order-{order}-{uuid.uuid4().hex[:8]}",  # your id: reports refer to it
        "account_id": os.environ.get("MAILPROXY_ACCOUNT", "main"),
        "from": "Shop <shop@example.com>",
        "to": [to],
        "subject": f"Your order {order}",
        "body": f"Order {order} ships today.",
    }
    answer = requests.post(
        f"{MAILPROXY_URL}/commands/add-messages",
        json={"messages": [message]},
        headers={"Authorization": f"Bearer {os.environ['MAILPROXY_API_KEY']}"},
        timeout=30,
    )
    answer.raise_for_status()
    result = answer.json()
    if result["rejected"]:
        raise RuntimeError(f"mailproxy refused the message: {result['rejected']}")
    return result


def record_report(entry: dict) -> None:
    """Where an application updates its own records; here, one line per event."""
    outcome = next(
        (
            k.removesuffix("_ts")
            for k in ("sent_ts", "error_ts", "deferred_ts", "bounce_ts")
            if k in entry
        ),
        "event",
    )
    print(f"report {entry['id']} {outcome}", flush=True)


class ReportHandler(BaseHTTPRequestHandler):
    """POST /proxy_sync: {"delivery_report": [...]} in, {"ok": true} out."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server looks for
        if self.path != "/proxy_sync":
            return self._answer(404, {"ok": False, "error": "not found"})
        token = os.environ.get("SYNC_TOKEN")
        given = self.headers.get("Authorization", "")
        if token and not hmac.compare_digest(given, f"Bearer {token}"):
            return self._answer(401, {"ok": False, "error": "bad token"})
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._answer(400, {"ok": False, "error": "not JSON"})
        for entry in body.get("delivery_report", []):
            record_report(entry)
        # Entries not listed in "error" count as received; mailproxy will not send them again.
        self._answer(200, {"ok": True})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send")
    send.add_argument("to")
    send.add_argument("--order", default="1001")
    serve = commands.add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    if args.command == "send":
        print(json.dumps(send_order_mail(args.to, args.order)))
    else:
        server = ThreadingHTTPServer((args.host, args.port), ReportHandler)
        print(f"listening on http://{args.host}:{args.port}/proxy_sync", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            sys.exit(0)


if __name__ == "__main__":
    main()
