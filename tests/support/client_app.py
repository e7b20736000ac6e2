"""A client application on loopback that receives delivery reports, as a tenant's app would:
a real HTTP server whose answers a test can program."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class ClientApp:
    expected_auth: str | None = None  # the whole Authorization header the app demands
    status: int = 200  # what it answers; 200 means the JSON below
    answer: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    calls: list[dict[str, Any]] = field(default_factory=list)  # every call, kept or not
    received: list[dict[str, Any]] = field(default_factory=list)  # entries it acknowledged
    _lock: threading.Lock = field(default_factory=threading.Lock)
    host: str = "127.0.0.1"  # any loopback address

    def start(self) -> ClientApp:
        self.server = make_server(self.host, 0, self._wsgi, threaded=True)
        self.url = f"http://{self.host}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        with self._lock:
            self.calls.append(
                {
                    "path": request.path,
                    "auth": request.headers.get("Authorization"),
                    "entries": body.get("delivery_report"),
                    "at": time.time(),
                }
            )
            if self.expected_auth and request.headers.get("Authorization") != self.expected_auth:
                return Response("unauthorized", status=401)
            if self.status != 200:
                return Response("down for maintenance", status=self.status)
            refused = set(self.answer.get("error") or [])
            self.received += [e for e in body.get("delivery_report", []) if e["id"] not in refused]
            return Response(json.dumps(self.answer), status=200, mimetype="application/json")

    def entries_for(self, msg_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.received if e["id"] == msg_id]
