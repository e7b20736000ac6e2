"""Per-process wiring of an instance: database, secret box and admin token from the settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .db import create_private_file, make_engine, make_session_factory
from .secrets_box import KeyFiles, SecretBox, decode_key, write_private_file
from .settings import Settings


@dataclass
class Instance:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    box: SecretBox


def open_instance(settings: Settings) -> Instance:
    """Connect to the database and load (or, on first run, create) the encryption key."""
    settings.data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    broker = settings.effective_broker_url
    if broker.startswith("sqla+sqlite:///"):  # the embedded broker's file, created private
        create_private_file(Path(broker.removeprefix("sqla+sqlite:///")))
    engine = make_engine(settings.effective_database_url)
    return Instance(settings, engine, make_session_factory(engine), secret_box(settings))


def secret_box(settings: Settings) -> SecretBox:
    """Keys from the settings (at scale), else from key files in data_dir, re-read when a
    rotation changes them."""
    if settings.encryption_key is not None:
        previous = [
            decode_key(key, "MAILPROXY_PREVIOUS_ENCRYPTION_KEYS")
            for key in settings.previous_encryption_keys
        ]
        return SecretBox(decode_key(settings.encryption_key.get_secret_value()), previous)
    files = key_files(settings)
    current, previous = files.load_or_create()
    return SecretBox(current, previous, reload=files.load_or_create)


def key_files(settings: Settings) -> KeyFiles:
    return KeyFiles(settings.data_path / "encryption.key")


def admin_token(settings: Settings) -> str:
    """The configured admin token, else the one generated on first run into data_dir."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    token_file: Path = settings.data_path / "admin_token"
    if token_file.exists():
        return token_file.read_text().strip()
    token = "mpa_" + secrets.token_urlsafe(32)
    write_private_file(token_file, token)
    return token
