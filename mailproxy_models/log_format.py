"""How API, workers and beat write their logs: plain text, or one JSON object per line.

A line about a message carries ``message_id`` and ``tenant_id``: given with ``extra=`` on
the call, or set for a stretch of code with ``log_context``. Other fields that a process
knows about the line (the Celery task's ``task_id`` and ``task_name``) are put on the record
by a ``logging.Filter`` of that process and written the same way.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

# Fields taken from the record (extra= or a filter) or from the context, in this order.
CONTEXT_FIELDS = ("message_id", "tenant_id", "task_id", "task_name")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "mailproxy_log_context", default=None
)


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Every line logged inside (in this thread or task) carries these fields."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601, UTC), level, logger, message, the context
    fields that apply, and ``exc`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _context.get() or {}
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value:
                entry[name] = str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(
    log_format: str, level: str | int, filters: Iterable[logging.Filter] = ()
) -> logging.Handler:
    """Send every logger's lines to stderr in ``log_format``, through one root handler
    (replacing the root's handlers, so no line is written twice in two shapes)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    for log_filter in filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
