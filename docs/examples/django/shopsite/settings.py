"""Settings of the example shop: just enough Django to send mail through mailproxy."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["shop"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "shopsite.urls"
DATABASES: dict = {}
USE_TZ = True
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"shop": {"handlers": ["console"], "level": "INFO"}},
}

# mailproxy: where it is, the tenant's API key and SMTP account, and the bearer token it
# sends with delivery reports (the tenant's client_auth; empty = no check).
MAILPROXY_URL = os.environ.get("MAILPROXY_URL", "http://127.0.0.1:8000")
MAILPROXY_API_KEY = os.environ.get("MAILPROXY_API_KEY", "")
MAILPROXY_ACCOUNT = os.environ.get("MAILPROXY_ACCOUNT", "main")
MAILPROXY_SYNC_TOKEN = os.environ.get("SYNC_TOKEN", "")
