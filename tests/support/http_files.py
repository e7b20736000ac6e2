"""A real HTTP server on loopback that serves attachments for the http_url and endpoint
sources: files by path, scripted statuses, slow answers, redirects, and a POST endpoint
that checks credentials. It records every request it receives."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Streamed without Content-Length, in blocks of this many bytes, up to ``body`` repeated.
    stream_blocks: int = 0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FileServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        # POST endpoint: storage_path -> content, and the Authorization it requires.
        self.endpoint_files: dict[str, bytes] = {}
        self.endpoint_authorization: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(
                    Seen(self.command, self.path, dict(self.headers.items()), body)
                )
                return body

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self._record()
                route = server.routes.get(self.path)
                if route is None:
                    self._answer(404, b"not found", {})
                    return
                time.sleep(route.delay)
                if route.stream_blocks:
                    self.send_response(route.status)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for _ in range(route.stream_blocks):
                            self.wfile.write(route.body)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                self._answer(route.status, route.body, route.headers)

            def do_POST(self) -> None:  # noqa: N802
                body = self._record()
                if server.endpoint_authorization is not None and (
                    self.headers.get("Authorization") != server.endpoint_authorization
                ):
                    self._answer(401, b"unauthorized", {})
                    return
                try:
                    wanted = json.loads(body)["storage_path"]
                except (ValueError, KeyError):
                    self._answer(400, b"bad request", {})
                    return
                content = server.endpoint_files.get(wanted)
                if content is None:
                    self._answer(404, b"no such attachment", {})
                else:
                    self._answer(200, content, {"Content-Type": "application/octet-stream"})

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)
