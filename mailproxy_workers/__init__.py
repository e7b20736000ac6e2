"""mailproxy's Celery workers: delivery and the sweeper.

``celery -A mailproxy_workers worker`` and ``celery -A mailproxy_workers beat`` load ``app``.
"""

from __future__ import annotations

from celery import Celery

from mailproxy_models.settings import Settings, get_settings
from mailproxy_models.wakeups import MAINTENANCE_QUEUE, SWEEP_TASK, make_celery_app

from .tasks import register_tasks


def create_worker_app(settings: Settings) -> Celery:
    app = make_celery_app(settings, name="mailproxy_workers")
    app.conf.beat_schedule = {
        "sweep": {
            "task": SWEEP_TASK,
            "schedule": settings.sweep_interval,
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.sweep_interval},
        }
    }
    register_tasks(app)
    return app


app = create_worker_app(get_settings())
