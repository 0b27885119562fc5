"""A node's effective configuration, as others may see it: every secret redacted."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orchestrator.settings import Settings

REDACTED = "***"
_SECRET_PARAM = re.compile(r"(?i)((?:password|passwd|secret|token|sasl_plain_password|key)[^=&]*=)[^&]*")


def redact_url(url: str) -> str:
    """``url`` without the password of its user part and the values of secret-looking query
    parameters (``?sasl_plain_password=...``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = _SECRET_PARAM.sub(lambda m: m.group(1) + REDACTED, parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url  # as written (urlunsplit would turn sqlite:///x into sqlite:/x)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


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
