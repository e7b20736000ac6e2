"""Messages: enqueue a batch, list, read one with its events, retry, delete."""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, current_app

from mailproxy_models.db import now
from mailproxy_models.events import events_of
from mailproxy_models.lifecycle import retry_messages
from mailproxy_models.message_validation import MessageLimits
from mailproxy_models.messages import (
    MessageFilter,
    delete_messages,
    enqueue_messages,
    find_message,
    list_messages,
    message_record,
    message_records,
)
from mailproxy_models.reports import purge_reported

from ..auth import current_caller, token_required
from ..request_json import Blueprint
from ..schemas import (
    AddMessagesAnswerSchema,
    AddMessagesSchema,
    CleanupAnswerSchema,
    CleanupSchema,
    DeleteMessagesAnswerSchema,
    DeleteMessagesSchema,
    MessageAnswerSchema,
    MessageListSchema,
    MessageQuerySchema,
    MessageScopeQuerySchema,
    RetryMessagesAnswerSchema,
    RetryMessagesSchema,
)
from ..transaction import after_commit, db_session

blp = Blueprint("messages", __name__, description="Messages")
log = logging.getLogger(__name__)


@blp.route("/commands/add-messages", methods=["POST"])
@token_required
@blp.arguments(AddMessagesSchema, error_status_code=400)
@blp.response(200, AddMessagesAnswerSchema)
def add_messages(data: dict[str, Any]) -> dict[str, Any]:
    """Queue a batch. Valid messages are stored in one transaction; each invalid or duplicate
    one is listed in `rejected` with a reason and not stored."""
    settings = current_app.extensions["mailproxy"].settings
    if len(data["messages"]) > settings.max_messages_per_call:
        abort(
            413,
            description=f"At most {settings.max_messages_per_call} messages per call; "
            "split the batch.",
        )
    caller = current_caller()
    for message in data["messages"]:  # a tenant naming another tenant learns nothing of it
        if isinstance(message, dict) and isinstance(message.get("tenant_id"), str):
            caller.scope(message["tenant_id"] or None)
    limits = MessageLimits(
        settings.max_recipients_per_message,
        settings.max_headers_per_message,
        settings.attachment_max_bytes,
    )
    box = current_app.extensions["mailproxy"].box
    result = enqueue_messages(
        db_session(), caller.tenant_id, data["messages"], limits, data["default_priority"], box
    )
    _log_rejections(result.rejected, data["messages"], caller.tenant_id)
    after_commit(
        lambda: log.info(
            "add-messages: %d queued, %d rejected",
            result.queued,
            len(result.rejected),
            extra={"tenant_id": caller.tenant_id},
        )
    )
    if result.due_priorities:
        publisher = current_app.extensions["mailproxy_wakeups"]
        after_commit(lambda: publisher.request(result.due_priorities))
    return {"ok": True, "queued": result.queued, "rejected": result.rejected}


def _log_rejections(
    rejected: list[dict[str, str]], payloads: list[Any], scope_tenant_id: str | None
) -> None:
    """One line per refused message: the operator's first question is why a mail never went."""
    tenants = {
        str(p.get("id")): p.get("tenant_id")
        for p in payloads
        if isinstance(p, dict) and isinstance(p.get("tenant_id"), str)
    }
    for entry in rejected:
        tenant_id = scope_tenant_id or tenants.get(entry["id"])
        extra = {"message_id": entry["id"], "tenant_id": tenant_id}
        log.info("message refused: %s", entry["reason"], extra=extra)


@blp.route("/commands/delete-messages", methods=["POST"])
@token_required
@blp.arguments(DeleteMessagesSchema)
@blp.response(200, DeleteMessagesAnswerSchema)
def post_delete_messages(data: dict[str, Any]) -> dict[str, Any]:
    tenant_id = current_caller().scope(data.get("tenant_id"))
    removed, not_found = delete_messages(db_session(), tenant_id, data["ids"])
    return {"ok": True, "removed": removed, "not_found": not_found}


@blp.route("/commands/retry-messages", methods=["POST"])
@token_required
@blp.arguments(RetryMessagesSchema)
@blp.response(200, RetryMessagesAnswerSchema)
def post_retry_messages(data: dict[str, Any]) -> dict[str, Any]:
    """Send messages in `error` or `deferred` again, now, with a full retry schedule. A sent
    message is refused (it would be delivered twice); another tenant's is `not_found`."""
    caller = current_caller()
    tenant_id = caller.scope(data.get("tenant_id"))
    result = retry_messages(db_session(), tenant_id, data["ids"], caller.label)
    if result.due_priorities:
        publisher = current_app.extensions["mailproxy_wakeups"]
        after_commit(lambda: publisher.request(result.due_priorities))
    return {
        "ok": True,
        "retried": result.retried,
        "not_found": result.not_found,
        "not_retryable": result.not_retryable,
    }


@blp.route("/commands/cleanup-messages", methods=["POST"])
@token_required
@blp.arguments(CleanupSchema, required=False)
@blp.response(200, CleanupAnswerSchema)
def cleanup_messages(data: dict[str, Any]) -> dict[str, Any]:
    """Remove reported messages older than the given age (default: the retention period).
    Messages not yet reported to the client are never removed."""
    data = data or {}
    settings = current_app.extensions["mailproxy"].settings
    age = data.get("older_than_seconds", settings.retention_days * 86400)
    tenant_id = current_caller().scope(data.get("tenant_id"))
    removed, session = 0, db_session()
    while batch := purge_reported(session, now() - age, tenant_id):
        removed += batch
    return {"ok": True, "removed": removed}


@blp.route("/messages", methods=["GET"])
@token_required
@blp.arguments(MessageQuerySchema, location="query", error_status_code=400)
@blp.response(200, MessageListSchema)
def get_messages(query: dict[str, Any]) -> dict[str, Any]:
    """Messages in the order they were queued, a page at a time (`next_cursor`)."""
    flt = MessageFilter(
        tenant_id=current_caller().scope(query.get("tenant_id")),
        status=query.get("status"),
        batch_code=query.get("batch_code"),
        active_only=query["active_only"],
    )
    session = db_session()
    page, next_cursor = list_messages(session, flt, query["limit"], query.get("cursor"))
    records = message_records(session, page, query["include_history"])
    return {"ok": True, "messages": records, "next_cursor": next_cursor}


@blp.route("/message/<message_id:msg_id>", methods=["GET"])
@token_required
@blp.arguments(MessageScopeQuerySchema, location="query")
@blp.response(200, MessageAnswerSchema)
def get_message(query: dict[str, Any], msg_id: str) -> dict[str, Any]:
    """One message with all its events."""
    session = db_session()
    message = find_message(session, current_caller().scope(query.get("tenant_id")), msg_id)
    if message is None:
        abort(404, description=f"message '{msg_id}' does not exist")
    return {
        "ok": True,
        "message": message_record(message, events_of(session, [message.pk])[message.pk]),
    }
