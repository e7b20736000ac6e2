"""Marshmallow schemas: what the API accepts and answers, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from mailproxy_models.errors import InvalidInput
from mailproxy_models.message_validation import priority_number

ID = validate.Length(min=1, max=64)


class OkSchema(Schema):
    ok = fields.Boolean(required=True)


class ErrorSchema(Schema):
    ok = fields.Boolean(required=True, metadata={"example": False})
    error = fields.String(
        required=True, metadata={"description": "What went wrong and what to do."}
    )
    errors = fields.Dict(metadata={"description": "Per-field messages, for validation errors."})


class ClientAuthSchema(Schema):
    method = fields.String(
        load_default="none", validate=validate.OneOf(["none", "basic", "bearer"])
    )
    user = fields.String(allow_none=True)
    password = fields.String(
        allow_none=True, metadata={"description": "Write-only; reads show ***"}
    )
    token = fields.String(allow_none=True, metadata={"description": "Write-only; reads show ***"})


class TenantInSchema(Schema):
    id = fields.String(required=True, validate=[ID, validate.Regexp(r"^[A-Za-z0-9_.-]+$")])
    name = fields.String(allow_none=True, validate=validate.Length(max=255))
    client_base_url = fields.Url(allow_none=True, require_tld=False)
    client_sync_path = fields.String(validate=validate.Length(max=255))
    client_attachment_path = fields.String(validate=validate.Length(max=255))
    client_auth = fields.Nested(ClientAuthSchema, allow_none=True)
    rate_limits = fields.Dict(allow_none=True)
    large_file_config = fields.Dict(allow_none=True)
    retry_schedule = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=7 * 86400)),
        allow_none=True,
        validate=validate.Length(min=1, max=20),
        metadata={"description": "Seconds before each retry (default: the instance's)."},
    )
    active = fields.Boolean()


class TenantUpdateSchema(TenantInSchema):
    class Meta:
        exclude = ("id",)


class TenantOutSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    client_base_url = fields.String(allow_none=True)
    client_sync_path = fields.String()
    client_attachment_path = fields.String()
    client_auth = fields.Dict(allow_none=True)
    rate_limits = fields.Dict(allow_none=True)
    large_file_config = fields.Dict(allow_none=True)
    retry_schedule = fields.List(fields.Integer(), allow_none=True)
    active = fields.Boolean()
    created_at = fields.Integer()


class TenantAnswerSchema(OkSchema):
    tenant = fields.Nested(TenantOutSchema)
    api_key = fields.String(metadata={"description": "Shown only when created."})


class TenantListSchema(OkSchema):
    tenants = fields.List(fields.Nested(TenantOutSchema))


class ApiKeyInSchema(Schema):
    expires_at = fields.Integer(allow_none=True, metadata={"description": "Unix seconds"})
    name = fields.String(allow_none=True, validate=validate.Length(max=255))


class ApiKeyAnswerSchema(OkSchema):
    api_key = fields.String(metadata={"description": "Shown only this once."})
    key_id = fields.Integer()
    revoked = fields.Integer()


class ApiKeyInfoSchema(Schema):
    key_id = fields.Integer()
    name = fields.String(allow_none=True)
    prefix = fields.String(metadata={"description": "First characters, to tell keys apart."})
    created_at = fields.Integer()
    expires_at = fields.Integer(allow_none=True)
    last_used_at = fields.Integer(allow_none=True)
    revoked_at = fields.Integer(allow_none=True)


class ApiKeyListSchema(OkSchema):
    api_keys = fields.List(fields.Nested(ApiKeyInfoSchema))


class AuditEntrySchema(Schema):
    ts = fields.Integer()
    actor = fields.String()
    action = fields.String()
    tenant_id = fields.String(allow_none=True)
    target_type = fields.String()
    target_id = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)


class AuditQuerySchema(Schema):
    tenant_id = fields.String(validate=ID)
    action = fields.String(validate=validate.Length(max=64))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(validate=validate.Length(max=200))


class AuditListSchema(OkSchema):
    entries = fields.List(fields.Nested(AuditEntrySchema))
    next_cursor = fields.String(allow_none=True)


class AccountInSchema(Schema):
    id = fields.String(required=True, validate=[ID, validate.Regexp(r"^[A-Za-z0-9_.@-]+$")])
    tenant_id = fields.String(validate=ID, metadata={"description": "Default: the token's tenant"})
    host = fields.String(validate=validate.Length(min=1, max=255))
    port = fields.Integer(validate=validate.Range(min=1, max=65535))
    user = fields.String(allow_none=True, validate=validate.Length(max=255))
    password = fields.String(allow_none=True, load_only=True)
    use_tls = fields.Boolean(
        allow_none=True,
        metadata={"description": "true: implicit TLS; false: plain; null: STARTTLS if offered"},
    )
    tls_verify = fields.Boolean(
        metadata={"description": "Verify the server certificate (default true). Opting out shows."}
    )
    allow_insecure_auth = fields.Boolean(
        metadata={
            "description": "Send the SMTP credentials even over a connection without TLS "
            "(no SMTPS, no STARTTLS). Default false: such a connection gets no AUTH, the "
            "messages wait and the account shows failing. Recorded in the audit log."
        }
    )
    ttl = fields.Integer(
        validate=validate.Range(min=0, max=86400),
        metadata={
            "description": "Seconds a connection is reused. Default: MAILPROXY_SMTP_POOL_TTL."
        },
    )
    batch_size = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=10000))
    limit_per_minute = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    limit_per_hour = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    limit_per_day = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    limit_behavior = fields.String(validate=validate.OneOf(["defer", "reject"]))
    is_pec = fields.Boolean()
    is_default = fields.Boolean(
        metadata={"description": "Used by messages without account_id (mailproxy extension)."}
    )
    bounce_address = fields.Email(
        allow_none=True,
        metadata={
            "description": "VERP (mailproxy extension): the envelope sender of each message "
            "becomes `local+m<n>-<token>@domain` of this address (`<token>`: 8 random "
            "letters and digits per message), so bounces are matched even without the "
            "original's headers, and a made-up bounce cannot name a message. A message's "
            "own return_path wins."
        },
    )
    imap_host = fields.String(
        allow_none=True,
        validate=validate.Length(max=255),
        metadata={"description": "Mailbox where bounces and PEC receipts arrive; polled by beat."},
    )
    imap_port = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1, max=65535),
        metadata={"description": "Default 993 with imap_tls true, else 143."},
    )
    imap_user = fields.String(allow_none=True, validate=validate.Length(max=255))
    imap_password = fields.String(allow_none=True, load_only=True)
    imap_tls = fields.Boolean(
        allow_none=True,
        metadata={"description": "true: implicit TLS; false: plain; null: STARTTLS if offered"},
    )
    imap_tls_verify = fields.Boolean(
        metadata={"description": "Verify the IMAP server certificate (default true)."}
    )
    imap_folder = fields.String(validate=validate.Length(min=1, max=255))
    imap_processed = fields.String(
        validate=validate.OneOf(["seen", "move"]),
        metadata={"description": "What happens to a processed bounce or receipt (default seen)."},
    )
    imap_processed_folder = fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=255),
        metadata={"description": "Target folder for imap_processed move (created if missing)."},
    )

    class Meta:
        unknown = EXCLUDE  # fields of the seed system this proxy does not use are ignored


class MailboxStatusSchema(Schema):
    last_poll_at = fields.Integer(allow_none=True)
    last_success_at = fields.Integer(allow_none=True)
    next_poll_at = fields.Integer(allow_none=True)
    failures = fields.Integer(metadata={"description": "Failed polls in a row."})
    last_error = fields.String(allow_none=True)
    processed = fields.Integer(metadata={"description": "Mails read from the mailbox so far."})


class AccountOutSchema(Schema):
    id = fields.String()
    tenant_id = fields.String()
    host = fields.String()
    port = fields.Integer()
    user = fields.String(allow_none=True)
    has_password = fields.Boolean()
    use_tls = fields.Boolean(allow_none=True)
    tls_verify = fields.Boolean()
    allow_insecure_auth = fields.Boolean()
    ttl = fields.Integer()
    batch_size = fields.Integer(allow_none=True)
    limit_per_minute = fields.Integer(allow_none=True)
    limit_per_hour = fields.Integer(allow_none=True)
    limit_per_day = fields.Integer(allow_none=True)
    limit_behavior = fields.String()
    is_pec = fields.Boolean()
    is_default = fields.Boolean()
    failing_since = fields.Integer(
        allow_none=True, metadata={"description": "Set while the server refuses the login."}
    )
    failing_reason = fields.String(allow_none=True)
    bounce_address = fields.String(allow_none=True)
    imap_host = fields.String(allow_none=True)
    imap_port = fields.Integer(allow_none=True)
    imap_user = fields.String(allow_none=True)
    has_imap_password = fields.Boolean()
    imap_tls = fields.Boolean(allow_none=True)
    imap_tls_verify = fields.Boolean()
    imap_folder = fields.String()
    imap_processed = fields.String()
    imap_processed_folder = fields.String(allow_none=True)
    imap_status = fields.Nested(
        MailboxStatusSchema,
        allow_none=True,
        metadata={"description": "How polling of the mailbox goes; null before the first poll."},
    )


class AccountAnswerSchema(OkSchema):
    account = fields.Nested(AccountOutSchema)


class AccountListSchema(OkSchema):
    accounts = fields.List(fields.Nested(AccountOutSchema))


class AccountQuerySchema(Schema):
    tenant_id = fields.String(validate=ID)


class PriorityField(fields.Field):
    """0-3 or the name of one (immediate, high, medium, low); loaded as the number."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        try:
            return priority_number(value, 2)
        except InvalidInput as exc:
            raise ValidationError(str(exc).removeprefix("priority: ")) from exc


PRIORITY_SCHEMA = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": 3},
        {"type": "string", "enum": ["immediate", "high", "medium", "low"]},
    ]
}

MESSAGE_DESCRIPTION = (
    "The messages to queue. Keys of each: `id` (required; 1-255 characters, no `/`, no "
    "control characters, not `.` or `..`), `from` (required; exactly one mailbox: `addr` "
    "or `Name <addr>`, a name "
    'holding a comma or an `@` in double quotes: `"Smith, John" <john@example.org>`), `to` '
    "(required), `cc`, `bcc` (each a list with exactly one mailbox per entry, or a string "
    "holding an RFC 5322 address list; at most 500 recipients in all), `reply_to` (one "
    "mailbox), `return_path` (one address, no name), `subject` (required), `body`, "
    "`content_type` (`plain`|`html`), `headers` (object of name to value, at most 50), "
    "`message_id` (RFC 5322 msg-id `<left@right>`; angle brackets added when missing), "
    "`priority` (0-3 or `immediate`|`high`|`medium`|`low`), `deferred_ts` (Unix seconds, "
    "0 to 253402300799), "
    "`batch_code` (at most 64 characters), `tenant_id`, `account_id`, `attachments` (objects "
    "with `filename`, `storage_path`, `fetch_mode`, `mime_type`, `content_md5`, `content_id`, "
    "`auth`; a base64 one at most `MAILPROXY_ATTACHMENT_MAX_BYTES`, 30 MiB by default). "
    "Header-bound text (subject, names, header values, ids, file names) holds no control "
    "characters except TAB. Any other key is refused, by name. Each message is validated on "
    "its own: an invalid one is listed in `rejected` with a reason naming the field, and the "
    "others are queued."
)


class AddMessagesSchema(Schema):
    messages = fields.List(
        fields.Dict(),
        required=True,
        metadata={"description": MESSAGE_DESCRIPTION},
    )
    default_priority = PriorityField(
        load_default=2,
        metadata={
            **PRIORITY_SCHEMA,
            "description": "Priority of messages without one: 0-3 or its name "
            "(immediate, high, medium, low).",
        },
    )


class RejectedSchema(Schema):
    id = fields.String()
    reason = fields.String()


class AddMessagesAnswerSchema(OkSchema):
    queued = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedSchema))


class DeleteMessagesSchema(Schema):
    ids = fields.List(fields.String(validate=validate.Length(min=1, max=255)), required=True)
    tenant_id = fields.String(validate=ID)


class DeleteMessagesAnswerSchema(OkSchema):
    removed = fields.Integer()
    not_found = fields.List(fields.String())


class RetryMessagesSchema(Schema):
    ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=255)),
        required=True,
        validate=validate.Length(min=1, max=1000),
    )
    tenant_id = fields.String(validate=ID)


class RetryMessagesAnswerSchema(OkSchema):
    retried = fields.Integer(metadata={"description": "Messages put back to pending, due now."})
    not_found = fields.List(fields.String())
    not_retryable = fields.List(
        fields.Nested(RejectedSchema),
        metadata={"description": "Sent, already pending, or being delivered, with why."},
    )


class CleanupSchema(Schema):
    older_than_seconds = fields.Integer(
        validate=validate.Range(min=0),
        metadata={"description": "Default: the retention period (MAILPROXY_RETENTION_DAYS)."},
    )
    tenant_id = fields.String(validate=ID)


class CleanupAnswerSchema(OkSchema):
    removed = fields.Integer()


class SyncStatusSchema(Schema):
    tenant_id = fields.String()
    client_sync_url = fields.String(allow_none=True)
    last_sync_ts = fields.Integer(allow_none=True)
    next_sync_ts = fields.Integer(allow_none=True)
    failures = fields.Integer()
    last_error = fields.String(allow_none=True)
    unreported = fields.Integer()


class SyncStatusListSchema(OkSchema):
    tenants = fields.List(fields.Nested(SyncStatusSchema))


class MessageQuerySchema(Schema):
    tenant_id = fields.String(validate=ID)
    status = fields.String(validate=validate.OneOf(["pending", "deferred", "sent", "error"]))
    batch_code = fields.String(validate=validate.Length(max=64))
    active_only = fields.Boolean(load_default=False)
    include_history = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(validate=validate.Length(max=200))


class EventSchema(Schema):
    ts = fields.Integer()
    kind = fields.String()
    description = fields.String(allow_none=True)
    smtp_code = fields.Integer(allow_none=True)
    enhanced_status = fields.String(allow_none=True)
    smtp_text = fields.String(allow_none=True)
    worker = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
    reported_ts = fields.Integer(allow_none=True)


class RecipientOutcomeSchema(Schema):
    address = fields.String()
    status = fields.String(
        metadata={
            "description": "pending (not answered yet), accepted, deferred (refused for now, "
            "tried again), refused (for good)"
        }
    )
    smtp_code = fields.Integer(allow_none=True)
    enhanced_status = fields.String(allow_none=True)
    smtp_text = fields.String(allow_none=True)
    ts = fields.Integer(allow_none=True)
    reason = fields.String(
        metadata={
            "description": "For a recipient refused for good with a 5xx: the bounce reason "
            "its words give (the vocabulary of bounces, docs/bounces.md)"
        }
    )
    bounce_type = fields.String(
        metadata={"description": "hard or soft, from the reason (refused recipients only)"}
    )


class MessageOutSchema(Schema):
    id = fields.String()
    tenant_id = fields.String()
    account_id = fields.String()
    priority = fields.Integer()
    batch_code = fields.String(allow_none=True)
    status = fields.String()
    created_at = fields.Integer()
    deferred_ts = fields.Integer(allow_none=True)
    sent_ts = fields.Integer(allow_none=True)
    error_ts = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    reported_ts = fields.Integer(allow_none=True)
    attempts = fields.Integer()
    smtp_message_id = fields.String(
        allow_none=True, metadata={"description": "The Message-ID every attempt carries."}
    )
    recipients = fields.List(fields.Nested(RecipientOutcomeSchema))
    events = fields.List(fields.Nested(EventSchema))
    # What came back (docs/bounces.md): the latest bounce and the PEC receipts.
    bounce_ts = fields.Integer(allow_none=True)
    bounce_type = fields.String(allow_none=True, metadata={"description": "hard or soft"})
    bounce_category = fields.String(
        allow_none=True, metadata={"description": "Why it bounced: a reason of docs/bounces.md"}
    )
    bounce_code = fields.Raw(
        allow_none=True, metadata={"description": "Enhanced status (5.1.1), else SMTP code"}
    )
    bounce_reason = fields.String(allow_none=True, metadata={"description": "The server's words"})
    pec_acceptance_ts = fields.Integer(allow_none=True)
    pec_delivery_ts = fields.Integer(allow_none=True)
    pec_error_ts = fields.Integer(allow_none=True)
    pec_error = fields.String(allow_none=True)


class MessageListSchema(OkSchema):
    messages = fields.List(fields.Nested(MessageOutSchema))
    next_cursor = fields.String(allow_none=True)


class MessageAnswerSchema(OkSchema):
    message = fields.Nested(MessageOutSchema)


class TenantScopeQuerySchema(Schema):
    tenant_id = fields.String(validate=ID)


class RunNowSchema(Schema):
    tenant_id = fields.String(validate=ID)


class RunNowAnswerSchema(OkSchema):
    woken = fields.List(fields.Integer(), metadata={"description": "Priorities woken"})


class SuspensionSchema(Schema):
    tenant_id = fields.String(validate=ID, metadata={"description": "Default: the token's tenant"})
    batch_code = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Only this batch; without it, the whole tenant."},
    )


class SuspensionAnswerSchema(OkSchema):
    active = fields.Boolean()
    suspended_batches = fields.List(fields.String())


class StatusSchema(OkSchema):
    version = fields.String()
    uptime_seconds = fields.Integer()
    active = fields.Boolean()
    queue_depth = fields.Dict(keys=fields.String(), values=fields.Integer())


class ReadySchema(OkSchema):
    error = fields.String(metadata={"description": "Present when not ready: which checks failed."})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={
            "description": '`database`, `broker` and `worker`: "ok", or what failed.',
            "example": {"database": "ok", "broker": "ok", "worker": "ok"},
        },
    )


class SuppressionSchema(Schema):
    address = fields.String()
    source = fields.String(metadata={"description": "bounce (a hard bounce) or manual"})
    reason = fields.String(allow_none=True)
    message_id = fields.String(
        allow_none=True, metadata={"description": "The message whose bounce put it here."}
    )
    created_at = fields.Integer()


class SuppressionQuerySchema(Schema):
    tenant_id = fields.String(validate=ID)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    after = fields.String(
        validate=validate.Length(max=320),
        metadata={"description": "The last address of the previous page."},
    )


class SuppressionListSchema(OkSchema):
    suppressions = fields.List(fields.Nested(SuppressionSchema))
    total = fields.Integer(metadata={"description": "Addresses on the tenant's list."})
    next_after = fields.String(
        allow_none=True, metadata={"description": "Pass as `after` for the next page."}
    )


class SuppressionAddSchema(Schema):
    tenant_id = fields.String(validate=ID)
    addresses = fields.List(
        fields.Email(validate=validate.Length(max=320)),
        required=True,
        validate=validate.Length(min=1, max=1000),
    )
    reason = fields.String(allow_none=True, validate=validate.Length(max=1000))


class SuppressionAddAnswerSchema(OkSchema):
    added = fields.Integer()
    already_listed = fields.List(fields.String())


# As in mailproxy_models.inbound (a mail read twice is never listed twice).
INBOUND_MAIL_KINDS = ["bounce", "pec_receipt", "auto_reply", "not_recognised", "unparseable"]
INBOUND_OUTCOMES = ["recorded", "uncorrelated", "ignored"]


class InboundMailQuerySchema(Schema):
    tenant_id = fields.String(validate=ID)
    account_id = fields.String(validate=ID)
    kind = fields.String(validate=validate.OneOf(INBOUND_MAIL_KINDS))
    outcome = fields.String(
        validate=validate.OneOf(INBOUND_OUTCOMES),
        metadata={
            "description": "recorded (events added to a message), uncorrelated (about no "
            "message of the tenant), ignored (no event: an auto-reply, mail not recognised "
            "or not parseable)."
        },
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    cursor = fields.String(
        validate=validate.Length(max=200),
        metadata={"description": "`next_cursor` of the previous page."},
    )


class InboundMailSchema(Schema):
    account_id = fields.String(metadata={"description": "The account whose mailbox held it."})
    received_at = fields.Integer(metadata={"description": "When mailproxy read it."})
    kind = fields.String(metadata={"description": " | ".join(INBOUND_MAIL_KINDS)})
    outcome = fields.String()
    message_id = fields.String(
        allow_none=True,
        metadata={"description": "The client's id of the message it was about, if found."},
    )
    summary = fields.String(
        allow_none=True, metadata={"description": "From, Subject and Message-ID of the mail."}
    )
    mail_sha256 = fields.String(metadata={"description": "SHA-256 of the mail's bytes."})


class InboundMailListSchema(OkSchema):
    inbound_mail = fields.List(fields.Nested(InboundMailSchema))
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as `cursor` for the next page."}
    )
