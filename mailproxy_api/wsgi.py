"""WSGI entry point: ``gunicorn mailproxy_api.wsgi:app``."""

from .app import create_app

app = create_app()
