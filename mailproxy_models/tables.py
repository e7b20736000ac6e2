"""Imports every table module, so ``Base.metadata`` is complete (migrations, drift checks)."""

from . import accounts, api_keys, audit, events, messages, reports, send_log, tenants  # noqa: F401
