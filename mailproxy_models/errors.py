"""Typed errors that cross layer boundaries; the API maps them to HTTP answers in one place."""

from __future__ import annotations


class MailproxyError(Exception):
    """Base of every domain error."""


class ConfigurationError(MailproxyError):
    """The instance is misconfigured (bad key, unreadable file)."""


class NotFound(MailproxyError):
    """An object does not exist, or belongs to another tenant (same answer on purpose)."""


class Conflict(MailproxyError):
    """The change contradicts what is stored (duplicate id, object in use)."""


class InvalidInput(MailproxyError):
    """Well-formed input that breaks a rule; ``errors`` maps field names to messages."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class DeliveryError(MailproxyError):
    """An SMTP attempt failed; ``code``/``enhanced``/``text`` keep what the server said."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        enhanced: str | None = None,
        text: str | None = None,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.enhanced = enhanced
        self.text = text
        self.details = details or {}


class TemporaryDeliveryError(DeliveryError):
    """Retry later: 4xx answers, timeouts, refused or dropped connections."""


class PermanentDeliveryError(DeliveryError):
    """Do not retry: 5xx answers, a message that cannot be built."""
