"""mailproxy's HTTP API (Flask + flask-smorest). ``create_app`` builds it; the WSGI entry
point for gunicorn is ``mailproxy_api.wsgi:app``."""

from .app import create_app

__all__ = ["create_app"]
