"""schemathesis hooks for tests/api/test_fuzz.py.

One rule of the API depends on the clock and so cannot be a bound in the document: an API
key's `expires_at` must be in the future. Schema-valid examples that lie in the past are
moved into the future (same remainder), so that positive data tests the rest of the request;
negative examples are left as generated.
"""

from __future__ import annotations

import time
from typing import Any

import schemathesis


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return
    if not case.operation.path.endswith("/api-key") or case.method.upper() != "POST":
        return
    body = case.body
    if isinstance(body, dict) and type(body.get("expires_at")) is int:
        now = int(time.time())
        if body["expires_at"] <= now + 60:
            body["expires_at"] = now + 3600 + body["expires_at"] % 86400
