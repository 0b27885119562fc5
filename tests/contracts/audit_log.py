"""The AuditLog contract: each backend's test subclasses AuditLogContract to say how to build it.

It also runs the chain logic (``orchestrator.audit``: trail, verify, search) over the backend, so
each backend is trusted with the whole audit trail, not only its four methods.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.audit.query import AuditQuery, search
from orchestrator.audit.record import GENESIS, Actor, Resource, parse
from orchestrator.audit.trail import AuditTrail
from orchestrator.audit.verify import verify_chain
from orchestrator.ports import AuditConflict, AuditEntry, AuditLog

PROTOCOL_METHODS = {"start", "stop", "append", "last", "read"}


def entry(sequence: int, text: str = "") -> AuditEntry:
    return AuditEntry(sequence, f'{{"n":{sequence},"t":"{text}"}}'.encode())


async def record_many(trail: AuditTrail, count: int, who: str) -> None:
    for i in range(count):
        await trail.record(
            "executions:cancel", actor=Actor(who, "key", f"k-{who}"), resource=Resource("executions", f"e{i}")
        )


class AuditLogContract(ABC):
    @abstractmethod
    async def make_log(self, tmp_path: Path) -> AuditLog:
        """A started log; durable backends open the same data when called again with the path."""

    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[AuditLog]:
        log = await self.make_log(tmp_path)
        try:
            yield log
        finally:
            await log.stop()

    async def test_an_empty_chain(self, log: AuditLog) -> None:
        assert await log.last() is None
        assert await log.read() == []
        assert (await verify_chain(log)).to_dict() == {"ok": True, "records": 0, "head": None, "problems": []}

    async def test_entries_come_back_in_sequence_order_byte_identical(self, log: AuditLog) -> None:
        for sequence in range(1, 8):
            await log.append(entry(sequence, "héllo"))

        assert await log.read() == [entry(s, "héllo") for s in range(1, 8)]
        assert await log.read(after=3, limit=2) == [entry(4, "héllo"), entry(5, "héllo")]
        assert await log.read(after=7) == []
        assert await log.last() == entry(7, "héllo")

    async def test_a_taken_sequence_is_a_conflict_and_the_first_entry_stands(self, log: AuditLog) -> None:
        await log.append(entry(1, "first"))

        with pytest.raises(AuditConflict) as raised:
            await log.append(entry(1, "second"))

        assert raised.value.sequence == 1
        assert await log.read() == [entry(1, "first")]

    async def test_sequences_start_at_one(self, log: AuditLog) -> None:
        with pytest.raises(ValueError):
            await log.append(entry(0))
        assert await log.read() == []

    async def test_the_log_offers_no_way_to_change_or_remove_an_entry(self, log: AuditLog) -> None:
        public = {name for name in dir(log) if not name.startswith("_") and callable(getattr(log, name))}
        assert public - PROTOCOL_METHODS <= {"from_url", "database", "statements"}
        assert not public & {"update", "delete", "replace", "truncate", "remove", "clear"}

    async def test_the_trail_chains_records_and_verify_accepts_them(self, log: AuditLog) -> None:
        trail = AuditTrail(log, clock=lambda: 1_700_000_000.0)
        first = await trail.record(
            "definitions:write", actor="key:alice", resource=Resource("definitions", "order")
        )
        second = await trail.record("executions:start", actor="api", resource="executions", outcome="denied")

        assert (first.sequence, first.previous) == (1, GENESIS)
        assert (second.sequence, second.previous) == (2, first.hash)
        assert [parse(e.body) for e in await log.read()] == [first, second]
        assert second.record.actor == Actor("api") and first.record.actor == Actor("alice", "key")
        report = await verify_chain(log)
        assert report.ok and report.records == 2 and report.head == (2, second.hash)

    async def test_two_trails_on_one_log_keep_one_chain(self, log: AuditLog) -> None:
        """Two appenders, each with its own idea of the head (as two processes have)."""
        one, two = AuditTrail(log), AuditTrail(log)

        await asyncio.gather(record_many(one, 25, "one"), record_many(two, 25, "two"))

        entries = await log.read(limit=1000)
        assert [e.sequence for e in entries] == list(range(1, 51))
        report = await verify_chain(log)
        assert report.ok, report.problems
        subjects = [parse(e.body).record.actor.subject for e in entries]
        assert subjects.count("one") == subjects.count("two") == 25

    async def test_search_filters_and_pages(self, log: AuditLog) -> None:
        trail = AuditTrail(log)
        for i in range(6):
            await trail.record(
                "executions:cancel" if i % 2 else "executions:start",
                actor=Actor("alice" if i < 3 else "bob", "key"),
                resource=Resource("executions", f"e{i}"),
                tenant="acme" if i % 3 else "default",
            )

        page = await search(log, AuditQuery(actor="key:alice", limit=2))
        assert [s.record.resource.id for s in page.items] == ["e0", "e1"]
        assert page.next_cursor is not None
        rest = await search(log, AuditQuery(actor="alice", after=page.next_cursor, limit=2))
        assert [s.record.resource.id for s in rest.items] == ["e2"] and rest.next_cursor is None
        cancels = await search(log, AuditQuery(action="executions:cancel", tenant="acme"))
        assert [s.record.resource.id for s in cancels.items] == ["e1", "e5"]
        assert [
            s.record.resource.id for s in (await search(log, AuditQuery(resource="executions/e4"))).items
        ] == ["e4"]
        assert len((await search(log, AuditQuery(action="executions:*"))).items) == 6
