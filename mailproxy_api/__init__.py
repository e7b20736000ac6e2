"""mailproxy's HTTP API (Flask + flask-smorest). ``create_app`` builds it; the WSGI entry
point for gunicorn is ``mailproxy_api.wsgi:app``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the command line imports this package and must start fast.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
