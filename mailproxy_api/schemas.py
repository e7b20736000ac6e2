"""Marshmallow schemas: what the API accepts and answers, and the OpenAPI document.

Input schemas are strict: an unknown field is refused with its name (and, for the seed
system's spellings, the field to use instead); every number has a stated range, and integers
in a JSON body must be JSON integers (``1.5`` or ``2e-282`` are not truncated).
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from mailproxy_models.errors import InvalidInput
from mailproxy_models.message_validation import priority_number

# The largest value a BIGINT column holds: every integer the API stores fits in it.
MAX_BIGINT = 2**63 - 1
# Unix seconds up to 9999-12-31.
MAX_UNIX_SECONDS = 253402300799
TENANT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
# A host name (RFC 1123 labels), an IPv4 address, or an IPv6 address: never spaces or line
# breaks, which would end up in an SMTP or IMAP conversation.
HOST_PATTERN = (
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7})$"
)
# An http(s) base URL: scheme, host, optional port and path; no query, fragment or spaces.
URL_PATTERN = (
    r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$"
)
# An address as mailproxy takes it where it stores one: ASCII local part (dot-atom characters)
# and a host name with at least two labels.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# A cursor is 11 URL-safe base64 characters (8 bytes); any such value is a valid position.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048]$"
# NUL is refused everywhere (PostgreSQL cannot store it); free text states it in its pattern.
TEXT_PATTERN = r"^[^\u0000]*$"

# The seed system's spellings of fields this API names differently.
SEED_SPELLINGS = {
    "username": "user",
    "smtp_host": "host",
    "smtp_port": "port",
    "smtp_user": "user",
    "smtp_password": "password",
    "tls": "use_tls",
    "tenant": "tenant_id",
    "account": "account_id",
}


class Pattern(validate.Regexp):
    """A regular expression the whole value must match. The document shows ``^...$``;
    matching uses ``\\Z`` so that a trailing newline never slips past ``$``."""

    def __init__(self, pattern: str, error: str | None = None) -> None:
        super().__init__(pattern, error=error or "Does not match the pattern {regex}.")
        self._whole = re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)

    def __call__(self, value: Any) -> Any:
        if self._whole.match(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def Text(*, max_length: int, min_length: int = 0, **kwargs: Any) -> fields.String:
    """A free-text string: a length range and no NUL."""
    return fields.String(
        validate=[validate.Length(min=min_length, max=max_length), Pattern(TEXT_PATTERN)],
        **kwargs,
    )


def Int(minimum: int, maximum: int, **kwargs: Any) -> fields.Integer:
    """A JSON integer (never a float or a string) within a range."""
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum), **kwargs)


def QueryInt(minimum: int, maximum: int, **kwargs: Any) -> fields.Integer:
    """An integer query parameter (a string of digits on the wire) within a range."""
    return fields.Integer(validate=validate.Range(min=minimum, max=maximum), **kwargs)


def Number(minimum: float, maximum: float, **kwargs: Any) -> fields.Float:
    """A finite JSON number within a range (NaN and Infinity are refused)."""
    return fields.Float(validate=validate.Range(min=minimum, max=maximum), **kwargs)


def TenantId(**kwargs: Any) -> fields.String:
    return fields.String(validate=Pattern(TENANT_ID_PATTERN), **kwargs)


def Cursor(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=Pattern(CURSOR_PATTERN, error="Not a cursor returned by this API."),
        metadata={"description": "`next_cursor` of the previous page (opaque)."},
        **kwargs,
    )


class JsonBoolean(fields.Boolean):
    """true or false, never 0, 1 or "yes": a JSON body says what it means."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictSchema(Schema):
    """Refuses unknown fields by name, in the body and in the query string alike (the
    webargs parser passes RAISE for both)."""

    class Meta:
        unknown = RAISE

    def handle_error(self, error: ValidationError, data: Any, **kwargs: Any) -> None:
        """Name the field to use where a client sent the seed system's spelling."""
        messages = error.messages if isinstance(error.messages, dict) else {}
        for key, use in SEED_SPELLINGS.items():
            if key in messages and use in self.load_fields:
                messages[key] = [f"Unknown field: use `{use}`."]


class OkSchema(Schema):
    ok = fields.Boolean(required=True)


class ErrorSchema(Schema):
    ok = fields.Boolean(required=True, metadata={"example": False})
    error = fields.String(
        required=True, metadata={"description": "What went wrong and what to do."}
    )
    errors = fields.Dict(metadata={"description": "Per-field messages, for validation errors."})


class ClientAuthSchema(StrictSchema):
    method = fields.String(
        load_default="none", validate=validate.OneOf(["none", "basic", "bearer"])
    )
    user = Text(max_length=255, allow_none=True)
    password = Text(
        max_length=4096, allow_none=True, metadata={"description": "Write-only; reads show ***"}
    )
    token = Text(
        max_length=4096, allow_none=True, metadata={"description": "Write-only; reads show ***"}
    )


class RateLimitsSchema(StrictSchema):
    per_minute = Int(1, 10**9, allow_none=True)
    per_hour = Int(1, 10**9, allow_none=True)
    per_day = Int(1, 10**9, allow_none=True)


# The path holds no space or control character (an explicit class, not \s, which Python and
# the document's readers would each read differently).
STORAGE_URL_PATTERN = (
    r"^(local|(s3|gs|azure)://[A-Za-z0-9._-]{1,255}(/[^\u0000-\u0020\u007f]{0,1024})?)$"
)


def _option(description: str) -> fields.String:
    return Text(max_length=65536, allow_none=True, metadata={"description": description})


class StorageOptionsSchema(StrictSchema):
    """What each storage reads (s3: endpoint_url ... addressing_style; gs: endpoint,
    service_account_json, project; azure: connection_string). Secrets read back as ***."""

    endpoint_url = _option("s3: endpoint of an S3-compatible service.")
    region = _option("s3: region (default us-east-1).")
    access_key_id = _option("s3: access key id.")
    secret_access_key = _option("s3: secret key (secret).")
    session_token = _option("s3: session token (secret).")
    addressing_style = fields.String(
        allow_none=True, validate=validate.OneOf(["auto", "path", "virtual"])
    )
    endpoint = _option("gs: endpoint of a GCS-compatible service.")
    service_account_json = _option("gs: service account key, JSON (secret).")
    project = _option("gs: project (default mailproxy).")
    connection_string = _option("azure: connection string (secret).")
    account_key = _option("azure: account key (secret).")


class LargeFileConfigSchema(StrictSchema):
    enabled = JsonBoolean(metadata={"description": "Default false."})
    max_size_mb = Number(
        0.001,
        102400,
        metadata={"description": "Attachments over this size (MB, default 10) get the action."},
    )
    action = fields.String(validate=validate.OneOf(["warn", "reject", "rewrite"]))
    storage_url = fields.String(
        allow_none=True,
        validate=Pattern(STORAGE_URL_PATTERN),
        metadata={"description": "local (default), s3://bucket/prefix, gs://…, azure://…"},
    )
    storage_options = fields.Nested(
        "StorageOptionsSchema",
        allow_none=True,
        metadata={
            "description": "Credentials and options of the storage; secrets read back as ***."
        },
    )
    file_ttl_days = Number(
        0.001,
        3650,
        allow_none=True,
        metadata={"description": "Lifetime of download links (default the instance's)."},
    )


NULL_CLEARS = " `null` clears it."


class TenantInSchema(StrictSchema):
    id = TenantId(required=True)
    name = Text(max_length=255, allow_none=True, metadata={"description": NULL_CLEARS})
    client_base_url = fields.String(
        allow_none=True,
        validate=[validate.Length(max=2048), Pattern(URL_PATTERN)],
        metadata={
            "description": "Base URL of the client's app (http or https, no query); where "
            "delivery reports go." + NULL_CLEARS
        },
    )
    client_sync_path = Text(min_length=1, max_length=255)
    client_attachment_path = Text(min_length=1, max_length=255)
    client_auth = fields.Nested(
        ClientAuthSchema, allow_none=True, metadata={"description": NULL_CLEARS}
    )
    rate_limits = fields.Nested(
        RateLimitsSchema,
        allow_none=True,
        metadata={"description": "Messages per minute, hour, day for the tenant." + NULL_CLEARS},
    )
    large_file_config = fields.Nested(
        LargeFileConfigSchema, allow_none=True, metadata={"description": NULL_CLEARS}
    )
    retry_schedule = fields.List(
        Int(1, 7 * 86400),
        allow_none=True,
        validate=validate.Length(min=1, max=20),
        metadata={
            "description": "Seconds before each retry (default: the instance's)." + NULL_CLEARS
        },
    )
    active = JsonBoolean()


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


class ApiKeyInSchema(StrictSchema):
    expires_at = Int(
        0,
        MAX_UNIX_SECONDS,
        allow_none=True,
        metadata={"description": "Unix seconds, in the future; null: never expires."},
    )
    name = Text(max_length=255, allow_none=True)


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


class AuditQuerySchema(StrictSchema):
    tenant_id = TenantId()
    action = Text(max_length=64)
    limit = QueryInt(1, 1000, load_default=100)
    cursor = Cursor()


class AuditListSchema(OkSchema):
    entries = fields.List(fields.Nested(AuditEntrySchema))
    next_cursor = fields.String(allow_none=True)


DEFAULT_TENANT_NOTE = "Default: the token's tenant. Required with the admin token (403 without it)."


class AccountInSchema(StrictSchema):
    id = fields.String(required=True, validate=Pattern(ACCOUNT_ID_PATTERN))
    tenant_id = TenantId(metadata={"description": DEFAULT_TENANT_NOTE})
    host = fields.String(
        validate=[validate.Length(min=1, max=253), Pattern(HOST_PATTERN)],
        metadata={
            "description": "SMTP server: a host name or an IP address. Needed with `port` "
            "to create an account: without them, the account must exist (404 otherwise)."
        },
    )
    port = Int(1, 65535)
    user = Text(max_length=255, allow_none=True)
    password = Text(max_length=4096, allow_none=True, load_only=True)
    use_tls = JsonBoolean(
        allow_none=True,
        metadata={"description": "true: implicit TLS; false: plain; null: STARTTLS if offered"},
    )
    tls_verify = JsonBoolean(
        metadata={"description": "Verify the server certificate (default true). Opting out shows."}
    )
    allow_insecure_auth = JsonBoolean(
        metadata={
            "description": "Send the SMTP credentials even over a connection without TLS "
            "(no SMTPS, no STARTTLS). Default false: such a connection gets no AUTH, the "
            "messages wait and the account shows failing. Recorded in the audit log."
        }
    )
    ttl = Int(
        0,
        86400,
        metadata={
            "description": "Seconds a connection is reused. Default: MAILPROXY_SMTP_POOL_TTL."
        },
    )
    batch_size = Int(1, 10000, allow_none=True)
    limit_per_minute = Int(1, 10**9, allow_none=True)
    limit_per_hour = Int(1, 10**9, allow_none=True)
    limit_per_day = Int(1, 10**9, allow_none=True)
    limit_behavior = fields.String(validate=validate.OneOf(["defer", "reject"]))
    is_pec = JsonBoolean()
    is_default = JsonBoolean(
        metadata={"description": "Used by messages without account_id (mailproxy extension)."}
    )
    bounce_address = fields.String(
        allow_none=True,
        # 255: the column's size (longer was a database error on PostgreSQL).
        validate=[validate.Length(max=255), Pattern(EMAIL_PATTERN.replace("+/", "/"))],
        metadata={
            "description": "VERP (mailproxy extension): the envelope sender of each message "
            "becomes `local+m<n>-<token>@domain` of this address (`<token>`: 8 random "
            "letters and digits per message), so bounces are matched even without the "
            "original's headers, and a made-up bounce cannot name a message. A message's "
            "own return_path wins. No `+` in the local part: mailproxy adds it."
        },
    )
    imap_host = fields.String(
        allow_none=True,
        validate=[validate.Length(min=1, max=253), Pattern(HOST_PATTERN)],
        metadata={"description": "Mailbox where bounces and PEC receipts arrive; polled by beat."},
    )
    imap_port = Int(
        1,
        65535,
        allow_none=True,
        metadata={"description": "Default 993 with imap_tls true, else 143."},
    )
    imap_user = Text(max_length=255, allow_none=True)
    imap_password = Text(max_length=4096, allow_none=True, load_only=True)
    imap_tls = JsonBoolean(
        allow_none=True,
        metadata={"description": "true: implicit TLS; false: plain; null: STARTTLS if offered"},
    )
    imap_tls_verify = JsonBoolean(
        metadata={"description": "Verify the IMAP server certificate (default true)."}
    )
    imap_folder = Text(min_length=1, max_length=255)
    imap_processed = fields.String(
        validate=validate.OneOf(["seen", "move"]),
        metadata={"description": "What happens to a processed bounce or receipt (default seen)."},
    )
    imap_processed_folder = Text(
        min_length=1,
        max_length=255,
        allow_none=True,
        metadata={
            "description": "Target folder for imap_processed move (created if missing; "
            "default `Processed`)."
        },
    )


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


class AccountQuerySchema(StrictSchema):
    tenant_id = TenantId()


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


class AddMessagesSchema(StrictSchema):
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


class DeleteMessagesSchema(StrictSchema):
    ids = fields.List(
        Text(min_length=1, max_length=255), required=True, validate=validate.Length(max=10000)
    )
    tenant_id = TenantId()


class DeleteMessagesAnswerSchema(OkSchema):
    removed = fields.Integer()
    not_found = fields.List(fields.String())


class RetryMessagesSchema(StrictSchema):
    ids = fields.List(
        Text(min_length=1, max_length=255),
        required=True,
        validate=validate.Length(min=1, max=1000),
    )
    tenant_id = TenantId()


class RetryMessagesAnswerSchema(OkSchema):
    retried = fields.Integer(metadata={"description": "Messages put back to pending, due now."})
    not_found = fields.List(fields.String())
    not_retryable = fields.List(
        fields.Nested(RejectedSchema),
        metadata={"description": "Sent, already pending, or being delivered, with why."},
    )


class CleanupSchema(StrictSchema):
    older_than_seconds = Int(
        0,
        MAX_UNIX_SECONDS,
        metadata={"description": "Default: the retention period (MAILPROXY_RETENTION_DAYS)."},
    )
    tenant_id = TenantId()


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


class MessageQuerySchema(StrictSchema):
    tenant_id = TenantId()
    status = fields.String(validate=validate.OneOf(["pending", "deferred", "sent", "error"]))
    batch_code = Text(max_length=64)
    active_only = fields.Boolean(load_default=False)
    include_history = fields.Boolean(load_default=False)
    limit = QueryInt(1, 1000, load_default=100)
    cursor = Cursor()


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


class TenantScopeQuerySchema(StrictSchema):
    tenant_id = TenantId(metadata={"description": DEFAULT_TENANT_NOTE})


class MessageScopeQuerySchema(StrictSchema):
    tenant_id = TenantId(metadata={"description": "Default: the token's tenant; any for admin."})


class RunNowSchema(StrictSchema):
    tenant_id = TenantId()


class RunNowAnswerSchema(OkSchema):
    woken = fields.List(fields.Integer(), metadata={"description": "Priorities woken"})


class SuspensionSchema(StrictSchema):
    tenant_id = TenantId(metadata={"description": DEFAULT_TENANT_NOTE})
    batch_code = Text(
        min_length=1,
        max_length=64,
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


class SuppressionQuerySchema(StrictSchema):
    tenant_id = TenantId(metadata={"description": DEFAULT_TENANT_NOTE})
    limit = QueryInt(1, 1000, load_default=100)
    after = Text(
        max_length=320,
        metadata={"description": "The last address of the previous page."},
    )


class SuppressionListSchema(OkSchema):
    suppressions = fields.List(fields.Nested(SuppressionSchema))
    total = fields.Integer(metadata={"description": "Addresses on the tenant's list."})
    next_after = fields.String(
        allow_none=True, metadata={"description": "Pass as `after` for the next page."}
    )


class SuppressionAddSchema(StrictSchema):
    tenant_id = TenantId(metadata={"description": DEFAULT_TENANT_NOTE})
    addresses = fields.List(
        fields.String(validate=[validate.Length(max=320), Pattern(EMAIL_PATTERN)]),
        required=True,
        validate=validate.Length(min=1, max=1000),
    )
    reason = Text(max_length=1000, allow_none=True)


class SuppressionAddAnswerSchema(OkSchema):
    added = fields.Integer()
    already_listed = fields.List(fields.String())


# As in mailproxy_models.inbound (a mail read twice is never listed twice).
INBOUND_MAIL_KINDS = ["bounce", "pec_receipt", "auto_reply", "not_recognised", "unparseable"]
INBOUND_OUTCOMES = ["recorded", "uncorrelated", "ignored"]


class InboundMailQuerySchema(StrictSchema):
    tenant_id = TenantId(metadata={"description": DEFAULT_TENANT_NOTE})
    account_id = fields.String(validate=Pattern(ACCOUNT_ID_PATTERN))
    kind = fields.String(validate=validate.OneOf(INBOUND_MAIL_KINDS))
    outcome = fields.String(
        validate=validate.OneOf(INBOUND_OUTCOMES),
        metadata={
            "description": "recorded (events added to a message), uncorrelated (about no "
            "message of the tenant), ignored (no event: an auto-reply, mail not recognised "
            "or not parseable)."
        },
    )
    limit = QueryInt(1, 1000, load_default=100)
    cursor = Cursor()


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
