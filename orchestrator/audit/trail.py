"""Appending to the audit chain: :class:`AuditTrail` seals each record after the current head and
appends it with the log's conditional append, re-reading the head and sealing again when another
appender (another process) took that place first. One chain, never forked.

HTTP requests are recorded by ``orchestrator.api.audit_log``; everything else that acts on the
stores (CLI commands on keys, secrets, roles) calls :meth:`AuditTrail.record` itself::

    async with open_audit_trail(settings) as trail:
        await trail.record("keys:create", actor=Actor("alice", "cli"),
                           resource=Resource("keys", key_id), tenant="default")
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping

from orchestrator.audit.record import (
    GENESIS,
    Actor,
    AuditRecord,
    Detail,
    Outcome,
    Resource,
    SealedRecord,
    clip,
    parse,
    seal,
)
from orchestrator.core.timefmt import rfc3339
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import AuditConflict, AuditLog

log = logging.getLogger(__name__)
ATTEMPTS = 100  # conflicts in a row before giving up (each means another record went in first)


class AuditUnavailable(RuntimeError):
    """The record could not be appended after ATTEMPTS conflicts."""


class AuditTrail(Lifecycle):
    """Records audit entries into one :class:`AuditLog`; started and stopped with it."""

    def __init__(self, log: AuditLog, clock: Callable[[], float] = time.time) -> None:
        self.log = log
        self.clock = clock
        self._lock = asyncio.Lock()  # one appender per process at a time: no self-inflicted conflicts
        self._head: SealedRecord | None = None

    async def start(self) -> None:
        await self.log.start()

    async def stop(self) -> None:
        await self.log.stop()

    async def record(
        self,
        action: str,
        *,
        actor: Actor | str,
        resource: Resource | str,
        tenant: str = "default",
        outcome: Outcome = "ok",
        reason: str | None = None,
        request_id: str | None = None,
        source: str | None = None,
        details: Mapping[str, Detail] | None = None,
    ) -> SealedRecord:
        """Append one record stamped now; returns it sealed (its sequence and hash).

        ``actor`` may be a command's actor string (``key:alice``); ``resource`` a bare type."""
        return await self.append(
            AuditRecord(
                time=rfc3339(self.clock()),
                actor=Actor.parse(actor) if isinstance(actor, str) else actor,
                action=action,
                resource=Resource(resource) if isinstance(resource, str) else resource,
                tenant=tenant,
                outcome=outcome,
                reason=clip(reason),
                request_id=request_id,
                source=source,
                details={k: clip(v) if isinstance(v, str) else v for k, v in (details or {}).items()},
            )
        )

    async def append(self, record: AuditRecord) -> SealedRecord:
        """Seal ``record`` after the head and append it; on a conflict read the head again."""
        async with self._lock:
            for attempt in range(ATTEMPTS):
                head = self._head if attempt == 0 and self._head is not None else await self._read_head()
                sealed = seal(record, head.sequence + 1 if head else 1, head.hash if head else GENESIS)
                try:
                    await self.log.append(sealed.entry())
                except AuditConflict:
                    self._head = None
                    await asyncio.sleep(random.random() * min(0.05, 0.001 * attempt))
                    continue
                self._head = sealed
                return sealed
        raise AuditUnavailable(f"audit record not appended after {ATTEMPTS} conflicts")

    async def _read_head(self) -> SealedRecord | None:
        last = await self.log.last()
        return None if last is None else parse(last.body)
