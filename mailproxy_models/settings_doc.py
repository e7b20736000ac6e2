"""Renders docs/configuration.md from the Settings object, so the reference never drifts."""

from __future__ import annotations

from .settings import Settings

HEADER = """# Configuration

Every setting comes from one typed object (`mailproxy_models.settings.Settings`). Set it
with an environment variable `MAILPROXY_<NAME>` or in a TOML file named by
`MAILPROXY_CONFIG_FILE` (keys in lower case; the environment wins over the file). Lists
are comma-separated in the environment (`MAILPROXY_RETRY_SCHEDULE=60,300,900`).

This page is generated: `python -m mailproxy_models.settings_doc > docs/configuration.md`.

| variable | default | what it does |
|---|---|---|
"""


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if hasattr(default, "get_secret_value"):
            default = default.get_secret_value()
        if isinstance(default, list):
            default = ",".join(str(item) for item in default)
        shown = "(unset)" if default is None else f"`{default}`"
        rows.append(f"| `MAILPROXY_{name.upper()}` | {shown} | {field.description} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
