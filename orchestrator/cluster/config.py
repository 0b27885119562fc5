"""A node's effective configuration, as others may see it: every secret redacted."""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.settings import Settings
from orchestrator.tls import MASK, redact_url

__all__ = ["REDACTED", "effective_config", "redact_url"]

REDACTED = MASK


def effective_config(settings: Settings) -> dict[str, Any]:
    """Every setting by name; URLs redacted, secrets and connections by name only."""
    shown: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name == "secrets":
            shown[field.name] = sorted(value)  # names, never values
        elif field.name == "connections":
            shown[field.name] = {name: redact_url(url) for name, url in sorted(value.items())}
        elif not field.repr:  # a setting kept out of repr() is a secret (the secrets key)
            shown[field.name] = REDACTED if value else None
        elif isinstance(value, str) and "://" in value:
            shown[field.name] = redact_url(value)
        elif isinstance(value, tuple):
            shown[field.name] = list(value)
        elif value is None or isinstance(value, str | int | float | bool):
            shown[field.name] = value
        else:
            shown[field.name] = REDACTED  # unknown kinds of values are not shown
    return shown
