"""A small client of mailproxy's own API, for the command line (works against any instance)."""

from __future__ import annotations

from typing import Any

import requests


class ApiError(Exception):
    """The API answered with an error, or could not be reached; the message says which."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["X-API-Token"] = token
        self.timeout = timeout

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self.session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ApiError(f"cannot reach {self.base_url}: {exc}") from exc
        try:
            body: dict[str, Any] = answer.json()
        except ValueError as exc:
            raise ApiError(
                f"{answer.status_code}: the answer is not JSON", answer.status_code
            ) from exc
        if not answer.ok or not body.get("ok", False):
            raise ApiError(
                f"{answer.status_code}: {body.get('error', answer.reason)}", answer.status_code
            )
        return body
