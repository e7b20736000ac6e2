"""The settings object: environment, TOML file, derived defaults, and its generated docs."""

from __future__ import annotations

from pathlib import Path

from mailproxy_models.settings import Settings
from mailproxy_models.settings_doc import render

REPO = Path(__file__).resolve().parents[2]


def test_environment_variables_are_read_with_the_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("MAILPROXY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MAILPROXY_RETRY_SCHEDULE", "5,10")
    monkeypatch.setenv("MAILPROXY_PORT", "9123")
    settings = Settings()
    assert settings.retry_schedule == [5, 10] and settings.port == 9123
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/mailproxy.sqlite"
    assert settings.effective_broker_url == f"sqla+sqlite:///{tmp_path}/broker.sqlite"
    assert settings.is_embedded_broker


def test_toml_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    config = tmp_path / "mailproxy.toml"
    config.write_text('port = 8100\nsweep_interval = 3.5\nbroker_url = "redis://r:6379/1"\n')
    monkeypatch.setenv("MAILPROXY_CONFIG_FILE", str(config))
    monkeypatch.setenv("MAILPROXY_PORT", "8200")
    settings = Settings()
    assert settings.port == 8200 and settings.sweep_interval == 3.5
    assert not settings.is_embedded_broker


def test_configuration_reference_matches_the_settings_object():
    documented = (REPO / "docs" / "configuration.md").read_text()
    assert documented == render(), "regenerate: python -m mailproxy_models.settings_doc"
