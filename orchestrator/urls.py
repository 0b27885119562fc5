"""Backends chosen by URL scheme. Each backend parses its own URL; modules load only when used."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

EVENT_LOGS = {
    "sqlite": "orchestrator.backends.sqlite:SQLiteEventLog",
    "memory": "orchestrator.backends.memory:MemoryEventLog",
}
REGISTRIES = {
    "sqlite": "orchestrator.backends.sqlite:SQLiteRegistry",
    "memory": "orchestrator.backends.memory:MemoryRegistry",
}
TRANSPORTS = {
    "inprocess": "orchestrator.backends.inprocess:InProcessTransport",
    "memory": "orchestrator.backends.inprocess:InProcessTransport",
}
TIMERS = {
    "memory": "orchestrator.backends.memory_timers:MemoryTimers",
}


class UnknownBackend(ValueError):
    """No backend serves that URL scheme."""


def backend_class(table: dict[str, str], url: str, kind: str) -> Any:
    scheme = urlsplit(url).scheme
    target = table.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(table))
        raise UnknownBackend(f"no {kind} backend for {url!r}; known: {known}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_backend(table: dict[str, str], url: str, kind: str, *args: Any) -> Any:
    """Instantiate the backend for ``url`` through its ``from_url``."""
    return backend_class(table, url, kind).from_url(url, *args)
