"""Backends chosen by URL scheme. Each backend parses its own URL; modules load only when used."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from orchestrator.tls import redact_url

EVENT_LOGS = {
    "sqlite": "orchestrator.backends.sqlite:SQLiteEventLog",
    "memory": "orchestrator.backends.memory:MemoryEventLog",
    "cassandra": "orchestrator.backends.cassandra.event_log:CassandraEventLog",
}
REGISTRIES = {
    "sqlite": "orchestrator.backends.sqlite:SQLiteRegistry",
    "memory": "orchestrator.backends.memory:MemoryRegistry",
    "cassandra": "orchestrator.backends.cassandra.event_log:CassandraRegistry",
}
AUDIT_LOGS = {  # the audit chain lives beside the event log: opened from the same URL
    "sqlite": "orchestrator.backends.sqlite.audit:SQLiteAuditLog",
    "memory": "orchestrator.backends.memory_audit:MemoryAuditLog",
    "cassandra": "orchestrator.backends.cassandra.audit:CassandraAuditLog",
}
# API keys and custom roles (orchestrator/auth), in the event log's backend.
ACCESS_STORES = {
    "sqlite": "orchestrator.backends.sqlite.access:SQLiteAccessStore",
    "memory": "orchestrator.backends.memory_access:MemoryAccessStore",
    "cassandra": "orchestrator.backends.cassandra.access:CassandraAccessStore",
}
TRANSPORTS = {
    "inprocess": "orchestrator.backends.inprocess:InProcessTransport",
    "memory": "orchestrator.backends.inprocess:InProcessTransport",
    "kafka": "orchestrator.backends.kafka.transport:KafkaTransport",
}
TIMERS = {
    "memory": "orchestrator.backends.memory_timers:MemoryTimers",
    "cassandra": "orchestrator.backends.cassandra.projections:CassandraTimers",
}
WAIT_INDEXES = {
    "memory": "orchestrator.backends.memory_waits:MemoryWaitIndex",
    "cassandra": "orchestrator.backends.cassandra.projections:CassandraWaitIndex",
}
NODE_DIRECTORIES = {
    "memory": "orchestrator.backends.memory_nodes:MemoryNodeDirectory",
    "sqlite": "orchestrator.backends.sqlite.nodes:SQLiteNodeDirectory",
    "cassandra": "orchestrator.backends.cassandra.nodes:CassandraNodeDirectory",
}
# Schedule states live in the event log's own database (opened on the event log's URL).
SCHEDULE_STATES = {
    "memory": "orchestrator.backends.memory_schedules:MemorySchedules",
    "sqlite": "orchestrator.backends.sqlite.schedules:SQLiteSchedules",
    "cassandra": "orchestrator.backends.cassandra.schedules:CassandraSchedules",
}
# Sealed secrets, stored beside the event log (orchestrator.secrets.sealed seals them).
SECRET_RECORDS = {
    "memory": "orchestrator.backends.memory_secrets:MemorySecretRecords",
    "sqlite": "orchestrator.backends.sqlite.secrets:SQLiteSecretRecords",
    "cassandra": "orchestrator.backends.cassandra.secrets:CassandraSecretRecords",
}
SESSION_STORES = {
    "memory": "orchestrator.backends.memory_sessions:MemorySessionStore",
    "sqlite": "orchestrator.backends.sqlite.sessions:SQLiteSessionStore",
    "cassandra": "orchestrator.backends.cassandra.sessions:CassandraSessionStore",
}
# Where timers and the wait index live when not configured: next to the event log when it is
# shared by many processes, else in memory (rebuilt from the log when the process starts).
PROJECTIONS_BESIDE_LOG = {"cassandra"}


def nodes_url(event_log_url: str) -> str:
    """The default URL of the node directory: beside an event log that processes share (a SQLite
    file two servers open, a Cassandra keyspace), else in memory."""
    return event_log_url if urlsplit(event_log_url).scheme in ("sqlite", "cassandra") else "memory://"


# Sessions live beside an event log every server process can open (the same SQLite file, the same
# keyspace), so any of them accepts a session another issued; else in memory.
SESSIONS_BESIDE_LOG = {"sqlite", "cassandra"}


def sessions_url(event_log_url: str) -> str:
    """The default URL of the session store for an event log."""
    return event_log_url if urlsplit(event_log_url).scheme in SESSIONS_BESIDE_LOG else "memory://"


def projection_url(event_log_url: str) -> str:
    """The default URL of the timers and the wait index for an event log."""
    return event_log_url if urlsplit(event_log_url).scheme in PROJECTIONS_BESIDE_LOG else "memory://"


class UnknownBackend(ValueError):
    """No backend serves that URL scheme."""


def backend_class(table: dict[str, str], url: str, kind: str) -> Any:
    scheme = urlsplit(url).scheme
    target = table.get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(table))
        raise UnknownBackend(f"no {kind} backend for {redact_url(url)!r}; known: {known}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_backend(table: dict[str, str], url: str, kind: str, *args: Any) -> Any:
    """Instantiate the backend for ``url`` through its ``from_url``."""
    return backend_class(table, url, kind).from_url(url, *args)
