"""The one typed settings object, read from ``MAILPROXY_*`` variables and an optional TOML file."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Every key is documented in docs/configuration.md (generated from these descriptions)."""

    model_config = SettingsConfigDict(env_prefix="MAILPROXY_", extra="ignore")

    config_file: Path | None = Field(
        None, description="Optional TOML file with any of these keys (environment wins)."
    )
    data_dir: Path = Field(
        Path("~/.mailproxy"),
        description="Directory for the embedded database, broker, key file and admin token.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Default: SQLite file `mailproxy.sqlite` in data_dir. "
        "At scale: `postgresql+psycopg2://user@host/db`.",
    )
    broker_url: str | None = Field(
        None,
        description="Celery broker URL. Default: kombu's SQLAlchemy transport on "
        "`broker.sqlite` in data_dir (no server). At scale: `redis://host:6379/0`.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Instance-wide admin token. Unset: generated once and kept in "
        "data_dir/admin_token (mode 0600).",
    )
    encryption_key: SecretStr | None = Field(
        None,
        description="Base64 of 32 bytes (AES-256-GCM) for SMTP passwords and other secrets. "
        "Unset: generated once in data_dir/encryption.key (mode 0600).",
    )
    previous_encryption_keys: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated base64 keys still accepted for reading, during a key "
        "rotation at scale (see docs/security.md).",
    )
    host: str = Field("127.0.0.1", description="Address the API listens on (`mail-proxy start`).")
    port: int = Field(8000, description="Port the API listens on (`mail-proxy start`).")
    smtp_pool_ttl: int = Field(
        300,
        ge=1,
        description="Seconds a pooled SMTP connection is reused before it is replaced: the "
        "`ttl` of an account created without one.",
    )
    smtp_timeout: float = Field(30.0, description="Socket timeout in seconds for SMTP commands.")
    smtp_ca_file: str | None = Field(
        None,
        description="Extra CA bundle (PEM) trusted for SMTP TLS, for servers with a private CA. "
        "Certificates are verified against the system CAs and this bundle, except for an "
        "account set to `tls_verify: false` (its explicit, visible opt-out).",
    )
    delivery_batch_size: int = Field(50, description="Messages one delivery task claims at a time.")
    lease_seconds: int = Field(
        300,
        description="How long a claim lasts; a worker that dies loses its claim after this and "
        "the sweeper hands the messages to another.",
    )
    sweep_interval: float = Field(
        15.0, description="Seconds between sweeper runs (finds due and abandoned messages)."
    )
    ready_worker_stale_seconds: float = Field(
        180.0,
        gt=0,
        description="`/ready` answers 503 when messages are due and no worker has taken a "
        "task from the broker for this many seconds. Keep it above the sweep interval and "
        "the longest delivery task.",
    )
    retry_schedule: Annotated[list[int], NoDecode] = Field(
        [60, 300, 900, 3600, 7200],
        description="Delays in seconds before each retry after a temporary failure; "
        "after the last one the message ends in `error`.",
    )
    report_batch_size: int = Field(
        500, description="Most delivery-report entries sent to a client in one call."
    )
    report_sync_interval: float = Field(
        10.0, description="Seconds between looks for tenants whose reports are due."
    )
    report_heartbeat: float = Field(
        300.0,
        description="A tenant with a sync URL is called at least this often (seconds), even "
        "with nothing to report, unless it asked not to be (next_sync_after).",
    )
    report_timeout: float = Field(30.0, description="Timeout in seconds of a call to a client.")
    report_backoff: Annotated[list[int], NoDecode] = Field(
        [10, 30, 60, 300, 900],
        description="Seconds to wait before calling a client again after each consecutive "
        "failure; the last step repeats.",
    )
    retention_days: float = Field(
        7.0, description="Reported messages older than this are purged; unreported never are."
    )
    cleanup_interval: float = Field(
        3600.0,
        description="Seconds between retention purges (messages, inbound log, offloaded files).",
    )
    imap_poll_interval: float = Field(
        60.0,
        description="Seconds between polls of each bounce/receipt mailbox; a failing mailbox "
        "waits twice as long after each failure, up to an hour.",
    )
    imap_timeout: float = Field(30.0, description="Socket timeout in seconds for IMAP commands.")
    imap_ca_file: str | None = Field(
        None,
        description="PEM file of extra CA certificates trusted for IMAP TLS (a private CA).",
    )
    imap_fetch_batch: int = Field(
        50, description="Mails fetched per IMAP FETCH while polling a mailbox."
    )
    imap_max_mail_bytes: int = Field(
        20 * 1024 * 1024,
        description="Larger mail in a bounce/receipt mailbox is not downloaded: it is logged "
        "as too large and left for a person.",
    )
    soft_bounce_limit: int = Field(
        5,
        description="Soft bounces of one address within soft_bounce_window_days after which "
        "it goes on the tenant's suppression list like a hard bounce; 0: never.",
    )
    soft_bounce_window_days: float = Field(
        7.0, description="The window in which soft bounces of an address are counted."
    )
    inbound_log_retention_days: float = Field(
        30.0,
        description="Days the log of mail read from bounce/receipt mailboxes is kept (it "
        "keeps the same mail from being recorded twice).",
    )
    pec_acceptance_timeout: float = Field(
        1800.0,
        description="Seconds after sending a PEC message without an acceptance receipt before "
        "a pec_timeout event.",
    )
    pec_delivery_timeout: float = Field(
        86400.0,
        description="Seconds after sending a PEC message without a delivery receipt for each "
        "recipient before a pec_timeout event.",
    )
    pec_timeout_check_interval: float = Field(
        60.0, description="Seconds between checks for PEC receipts that did not come in time."
    )
    rate_window_scale: float = Field(
        1.0,
        description="Multiplies the rate-limit windows (minute, hour, day). Only for tests "
        "and demonstrations: 0.1 makes a minute last 6 seconds.",
    )
    max_messages_per_call: int = Field(
        5000, description="Most messages accepted by one add-messages call."
    )
    max_recipients_per_message: int = Field(
        500, description="Most recipients (to + cc + bcc) of one message."
    )
    max_request_bytes: int = Field(
        50 * 1024 * 1024, description="Largest request body the API accepts (413 above)."
    )
    max_headers_per_message: int = Field(50, description="Most custom headers on one message.")
    embedded_poll_interval: float = Field(
        0.1, description="Polling interval in seconds of the embedded (SQLite) broker."
    )
    log_level: str = Field("INFO", description="Logging level of API and workers.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text`: plain lines. `json`: one JSON object per line (ts, level, logger, "
        "message, and message_id, tenant_id, task_id, task_name where they apply) from the "
        "API, the workers and beat.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token `/metrics` requires (`Authorization: Bearer <token>`). "
        "Unset: `/metrics` is open, like `/health`.",
    )
    attachment_root: Path | None = Field(
        None,
        description="Directory of `filesystem` attachments: a tenant reads only under "
        "`<attachment_root>/<tenant id>` (no `..`, no absolute path outside it, no symlink "
        "leading out). Unset: `filesystem` attachments fail with a permanent error.",
    )
    private_networks_allowed: Annotated[list[str], NoDecode] = Field(
        [],
        description="Which tenants may make the workers reach loopback, link-local and "
        "private addresses (`http_url` and `endpoint` attachments, delivery reports to "
        "`client_base_url`), comma-separated: `acme` (all such addresses), `acme=10.1.0.0/16` "
        "(that network), `*=10.1.0.0/16` (that network, for every tenant). For everything "
        "else such an address (any the name resolves to, and after each redirect) is refused. "
        "See docs/security.md.",
    )
    attachment_private_url_tenants: Annotated[list[str], NoDecode] = Field(
        [],
        description="Older name of `MAILPROXY_PRIVATE_NETWORKS_ALLOWED`, same format; "
        "its entries are added to it.",
    )
    attachment_fetch_timeout: float = Field(
        30.0, description="Seconds one attachment fetch may take in all (connect and read)."
    )
    attachment_max_bytes: int = Field(
        30 * 1024 * 1024,
        description="Largest attachment fetched from any source; a bigger one is a permanent "
        "error.",
    )
    attachment_fetch_concurrency: int = Field(
        3, description="Attachments of one message fetched at the same time."
    )
    attachment_cache_dir: Path | None = Field(
        None,
        description="Directory of the disk cache of fetched attachments (by content MD5). "
        "Default: `attachment-cache` in data_dir.",
    )
    attachment_cache_memory_bytes: int = Field(
        64 * 1024 * 1024,
        description="Bytes of attachment content kept in memory per worker process (LRU).",
    )
    attachment_cache_memory_item_bytes: int = Field(
        1024 * 1024,
        description="Largest attachment kept in the memory cache; bigger ones only on disk.",
    )
    attachment_cache_disk_bytes: int = Field(
        1024 * 1024 * 1024,
        description="Bytes the disk cache may hold; the oldest files are removed beyond it. "
        "0 disables the disk cache.",
    )
    offload_link_ttl_days: float = Field(
        7.0,
        description="Default lifetime of the download links of offloaded attachments "
        "(a tenant's `large_file_config.file_ttl_days` overrides it).",
    )
    offload_local_dir: Path | None = Field(
        None,
        description="Where the `local` storage backend keeps offloaded files. "
        "Default: `offload` in data_dir.",
    )
    download_link_secret: SecretStr | None = Field(
        None,
        description="Key signing the download links of the `local` storage backend. "
        "Unset: derived from the admin token (changing it then invalidates the links).",
    )
    public_base_url: str | None = Field(
        None,
        description="Base URL recipients reach this instance's API at, for `local` storage "
        "download links. Default: `http://<host>:<port>`.",
    )

    @field_validator("private_networks_allowed", "attachment_private_url_tenants", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.strip("[] ").split(",") if part.strip()]
        for entry in value or []:
            name, _, network = str(entry).partition("=")
            if not name.strip():
                raise ValueError(f"'{entry}': a tenant id (or *) is needed before '='")
            if name.strip() == "*" and not network.strip():
                raise ValueError(f"'{entry}': '*' needs a network, like '*=127.0.0.0/8'")
            if network.strip():
                ipaddress.ip_network(network.strip(), strict=False)  # ValueError names it
        return value

    @field_validator("retry_schedule", "report_backoff", mode="before")
    @classmethod
    def _split_schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.strip("[] ").split(",") if part.strip()]
        return value

    @field_validator("previous_encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("MAILPROXY_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'mailproxy.sqlite'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.data_path / 'broker.sqlite'}"

    @property
    def effective_attachment_cache_dir(self) -> Path:
        return (self.attachment_cache_dir or self.data_path / "attachment-cache").expanduser()

    @property
    def effective_offload_local_dir(self) -> Path:
        return (self.offload_local_dir or self.data_path / "offload").expanduser()

    @property
    def effective_public_base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_private_networks_allowed(self) -> list[str]:
        return [*self.private_networks_allowed, *self.attachment_private_url_tenants]

    @property
    def is_embedded_broker(self) -> bool:
        return self.effective_broker_url.startswith("sqla+")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
