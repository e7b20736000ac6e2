"""Imports every table module, so ``Base.metadata`` is complete (migrations, drift checks)."""

from . import (  # noqa: F401
    accounts,
    api_keys,
    audit,
    delivery_metrics,
    delivery_totals,
    events,
    inbound,
    mailboxes,
    messages,
    reports,
    send_log,
    suppression_list,
    suspensions,
    tenants,
    worker_heartbeats,
)
