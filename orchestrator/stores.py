"""Opening the stores beside the event log one by one, for commands that need a store and not
a whole :class:`orchestrator.runtime.Runtime` (maintenance, keys, audit, secrets): part of the
library's composition root, with ``runtime.py``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from orchestrator.access_ports import AccessStore
from orchestrator.audit.trail import AuditTrail
from orchestrator.backends.urls import (
    ACCESS_STORES,
    AUDIT_LOGS,
    EVENT_LOGS,
    REGISTRIES,
    SECRET_RECORDS,
    open_backend,
)
from orchestrator.crypto import setup as encryption
from orchestrator.ports import EventLog, Registry
from orchestrator.secrets.keyring_sealing import secret_sealer
from orchestrator.secrets.sealed import SealedSecrets
from orchestrator.settings import Settings, SettingsError


@contextlib.asynccontextmanager
async def open_access_store(settings: Settings) -> AsyncIterator[AccessStore]:
    """The started store of API keys and custom roles (beside the event log), stopped on exit."""
    store: AccessStore = open_backend(ACCESS_STORES, settings.event_log_url, "access store")
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


@contextlib.asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[tuple[EventLog, Registry]]:
    """The started event log and registry of ``settings``, stopped on exit: all that maintenance
    commands (export, import, verify, retention) need, without the rest of a :class:`Runtime`."""
    log_: EventLog = open_backend(EVENT_LOGS, settings.event_log_url, "event log")
    encryption.attach(log_, encryption.keyring_of(settings))
    registry: Registry = open_backend(REGISTRIES, settings.effective_registry_url, "registry")
    await log_.start()
    try:
        await registry.start()
        try:
            yield log_, registry
        finally:
            await registry.stop()
    finally:
        await log_.stop()


@contextlib.asynccontextmanager
async def open_audit_trail(settings: Settings) -> AsyncIterator[AuditTrail]:
    """The started audit trail beside the event log of ``settings``, stopped on exit: for
    commands that act on the stores and record what they did (``orchestrator.audit``)."""
    trail = AuditTrail(open_backend(AUDIT_LOGS, settings.event_log_url, "audit log"))
    async with trail:
        yield trail


def open_secret_store(settings: Settings, url: str | None = None, log: EventLog | None = None) -> SealedSecrets:
    """The secret store beside the event log (or at ``url``), not started (sealing: ``secret_sealer``)."""
    try:
        sealer = secret_sealer(settings.secrets_key, encryption.keyring_of(settings), log, lambda: open_backend(EVENT_LOGS, settings.event_log_url, "event log"))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    records = open_backend(SECRET_RECORDS, url or settings.event_log_url, "secret store")
    return SealedSecrets(records, sealer)
