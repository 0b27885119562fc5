"""Reading the audit chain with filters, oldest first, in pages: the API and the CLI's view.

The chain has no secondary index: a page scans forward from its cursor (the last sequence
looked at) and stops after ``limit`` matches or ``scan`` records, whichever comes first; the
returned cursor resumes there, so a narrow filter over a long chain takes several pages.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator
from dataclasses import dataclass

from orchestrator.audit.record import AuditFormatError, SealedRecord, parse
from orchestrator.ports import AuditLog

SCAN = 10_000  # records looked at per page, at most
READ = 500  # records read per request to the log


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters (all optional, combined with AND). ``actor`` matches the subject or
    ``kind:subject``; ``action`` and ``resource`` (``type`` or ``type/id``) take ``*`` globs;
    ``since`` (inclusive) and ``until`` (exclusive) are RFC 3339 UTC times."""

    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    tenant: str | None = None
    since: str | None = None
    until: str | None = None
    after: int = 0  # the cursor: records after this sequence
    limit: int = 100

    def matches(self, sealed: SealedRecord) -> bool:
        r = sealed.record
        if self.tenant is not None and r.tenant != self.tenant:
            return False
        if self.actor is not None and self.actor not in (
            r.actor.subject,
            f"{r.actor.kind}:{r.actor.subject}",
        ):
            return False
        if self.action is not None and not fnmatch.fnmatchcase(r.action, self.action):
            return False
        if self.resource is not None:
            name = r.resource.type if "/" not in self.resource else f"{r.resource.type}/{r.resource.id or ''}"
            if not fnmatch.fnmatchcase(name, self.resource):
                return False
        if self.since is not None and r.time < self.since:
            return False
        return self.until is None or r.time < self.until


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[SealedRecord]
    next_cursor: int | None  # None: the end of the chain was reached


async def search(log: AuditLog, query: AuditQuery, scan: int = SCAN) -> AuditPage:
    """One page of matching records after ``query.after``."""
    found: list[SealedRecord] = []
    after, looked = query.after, 0
    while len(found) < query.limit and looked < scan:
        entries = await log.read(after, min(READ, scan - looked))
        if not entries:
            return AuditPage(found, None)
        for entry in entries:
            looked += 1
            after = entry.sequence
            sealed = _parsed(entry.body)
            if sealed is not None and query.matches(sealed):
                found.append(sealed)
                if len(found) == query.limit:
                    break
    more = await log.read(after, 1)
    return AuditPage(found, after if more else None)


async def every(log: AuditLog, query: AuditQuery) -> AsyncIterator[SealedRecord]:
    """Every matching record after ``query.after`` (exports)."""
    after = query.after
    while True:
        entries = await log.read(after, READ)
        if not entries:
            return
        for entry in entries:
            sealed = _parsed(entry.body)
            if sealed is not None and query.matches(sealed):
                yield sealed
        after = entries[-1].sequence


def _parsed(body: bytes) -> SealedRecord | None:
    """Unreadable rows are skipped here; ``verify`` reports them."""
    try:
        return parse(body)
    except AuditFormatError:
        return None
