"""gunicorn settings of the API.

    gunicorn -c python:mailproxy_api.gunicorn_conf mailproxy_api.wsgi:app

Several worker processes answer ``/metrics`` in turn, so each writes its HTTP metrics to
files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds up all of them. prometheus_client
chooses between memory and files when it is first imported, so the variable is set here,
in the master, before any worker loads the app. The directory is emptied at start (the
counters of a previous run would otherwise be added in again) and the files of a worker
that exited are marked dead.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn import util as gunicorn_util

os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), "mailproxy-prometheus")
)
MULTIPROC_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own answer to a request it refuses before the app sees it (a header over
    its size limit, a malformed request line) as JSON, like every other error of the API.
    Replaces ``gunicorn.util.write_error``, which writes HTML; workers inherit it by fork."""
    body = json.dumps({"ok": False, "error": f"{reason}: {mesg}".rstrip(": ")}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn_util.write_error = _write_json_error


def on_starting(_server: Any) -> None:
    shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)
    MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)


def child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _json_logging() -> dict[str, Any] | None:
    """gunicorn's own lines (errors, access log) as JSON too when the API logs JSON."""
    from mailproxy_models.settings import get_settings

    if get_settings().log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "mailproxy_models.log_format.JsonFormatter"}},
        "handlers": {
            "error": {"class": "logging.StreamHandler", "formatter": "json"},
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        # gunicorn merges this over its defaults one level deep: its root logger names a
        # "console" handler that these handlers replace, so the root is named here too.
        "root": {"handlers": ["error"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["error"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


_logging = _json_logging()
if _logging is not None:
    logconfig_dict = _logging

# gunicorn 25+ opens a control socket in $HOME by default: nothing here uses it, two
# instances on one host would share its path, and a container's HOME may be read-only.
control_socket_disable = True
