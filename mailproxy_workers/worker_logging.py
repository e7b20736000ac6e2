"""JSON logs for the Celery worker and beat: every line, Celery's own included, in one shape.

Connected only when ``log_format`` is ``json``: a receiver of ``setup_logging`` tells Celery
to leave logging alone, so in text mode Celery keeps its usual output.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from celery._state import get_current_task

from mailproxy_models.log_format import JsonFormatter, configure_logging
from mailproxy_models.settings import Settings


class TaskContextFilter(logging.Filter):
    """Puts the running task's id and name on each record (as Celery's TaskFormatter does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = get_current_task()
        if task is not None and task.request and task.request.id:
            if not getattr(record, "task_id", None):
                record.task_id = task.request.id
            if not getattr(record, "task_name", None):
                record.task_name = task.name
        return True


def install_worker_logging(settings: Settings) -> None:
    """Hook Celery's logging set-up so worker and beat log in ``settings.log_format``."""
    if settings.log_format != "json":
        return

    def _setup(loglevel: Any = None, **_kwargs: Any) -> None:
        configure_logging("json", loglevel or settings.log_level, [TaskContextFilter()])

    def _task_logger(logger: logging.Logger, **_kwargs: Any) -> None:
        # Sent only if Celery set up its task logger itself: its handlers write JSON too.
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
            handler.addFilter(TaskContextFilter())

    signals.setup_logging.connect(_setup, weak=False, dispatch_uid="mailproxy-json-logging")
    signals.after_setup_task_logger.connect(
        _task_logger, weak=False, dispatch_uid="mailproxy-json-task-logger"
    )
