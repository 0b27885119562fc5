"""Export and import: round trips between backends, idempotence, conflicts, bad files, paging."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.history import archive, integrity
from orchestrator.history.archive import ArchiveError
from orchestrator.ports import EventLog, Registry
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from schemas.envelope import Envelope, chained
from tests.contracts.factories import definition, event, history, started
from tests.data_workloads import as_bytes, histories, run_workloads, states


def chain(events: Sequence[Envelope]) -> list[Envelope]:
    previous, out = "", []
    for envelope in events:
        envelope = chained(previous, envelope)
        previous = envelope.chainhash or ""
        out.append(envelope)
    return out


async def exported(log: EventLog, registry: Registry, **options: Any) -> str:
    out = io.StringIO()
    await archive.export(log, registry, out, **options)
    return out.getvalue()


@pytest.fixture
async def source() -> AsyncIterator[tuple[EventLog, Registry, list[str]]]:
    """A memory log and registry holding real histories (two versions, a child, a failure)."""
    async with Runtime(Settings(event_log_url="memory://")) as runtime:
        ids = await run_workloads(runtime)
    yield runtime.log, runtime.registry, ids


async def test_round_trip_memory_to_sqlite(
    source: tuple[EventLog, Registry, list[str]], tmp_path: Path
) -> None:
    log, registry, ids = source
    text = await exported(log, registry)
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0]["kind"] == "header" and records[0]["format"] == "orchestrator-export"
    assert records[0]["version"] == 1 and records[0]["exported_at"].endswith("Z")
    total = sum(len(h) for h in (await histories(log, ids)).values())
    assert records[-1] == {"kind": "footer", "executions": len(ids), "events": total, "definitions": 5}
    kinds = [r["kind"] for r in records[1:-1]]
    assert kinds == ["definition"] * 5 + ["event"] * total  # definitions first
    subjects = [r["event"]["subject"] for r in records if r["kind"] == "event"]
    assert len({s for i, s in enumerate(subjects) if i == 0 or subjects[i - 1] != s}) == len(
        ids
    )  # contiguous

    async with open_stores(Settings(event_log_url=f"sqlite:///{tmp_path}/target.db")) as (
        target,
        target_registry,
    ):
        report = await archive.import_(target, target_registry, io.StringIO(text))
        assert report.ok, report.problems
        assert (report.definitions_added, report.executions, report.events_appended) == (5, len(ids), total)
        before, after = await histories(log, ids), await histories(target, ids)
        assert as_bytes(after) == as_bytes(before)  # byte for byte, chain hashes included
        assert states(after) == states(before)
        for name in ("greet", "kid", "parent", "broken"):
            assert await target_registry.versions(name) == await registry.versions(name)
            for version in await registry.versions(name):
                assert await target_registry.get(name, version) == await registry.get(name, version)
        for execution_id in ids:
            assert await target.summary(execution_id) == await log.summary(execution_id)
        assert (await integrity.verify(target, target_registry)).problems == []
        # exporting the target again gives the same lines (but the time in the header)
        again = await exported(target, target_registry)
    assert sorted(again.splitlines()[1:]) == sorted(text.splitlines()[1:])


async def test_reimport_is_idempotent(source: tuple[EventLog, Registry, list[str]], tmp_path: Path) -> None:
    log, registry, ids = source
    text = await exported(log, registry)
    async with open_stores(Settings(event_log_url=f"sqlite:///{tmp_path}/target.db")) as (
        target,
        target_registry,
    ):
        first = await archive.import_(target, target_registry, io.StringIO(text))
        second = await archive.import_(target, target_registry, io.StringIO(text))
        assert second.ok and second.events_appended == 0 and second.definitions_added == 0
        assert second.events_unchanged == first.events_appended
        assert second.definitions_unchanged == 5
        assert as_bytes(await histories(target, ids)) == as_bytes(await histories(log, ids))


async def test_import_completes_a_partial_history() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(definition("wf", version=1))
    events = chain(history("a", 9))
    await log.append("a", 0, events)
    text = await exported(log, registry)

    target = MemoryEventLog()
    await target.append("a", 0, events[:4])  # an earlier export of it, imported before
    report = await archive.import_(target, MemoryRegistry(), io.StringIO(text), batch_size=2)
    assert report.ok and (report.events_unchanged, report.events_appended) == (4, 5)
    assert await target.read("a") == events


async def test_a_differing_event_is_a_conflict_and_changes_nothing() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(definition("wf", version=1))
    for name in ("a", "b"):
        await log.append(name, 0, chain(history(name, 5)))
    target = MemoryEventLog()
    mine = chain([*history("a", 2), event("a", 3, data={"mine": True})])
    await target.append("a", 0, mine)

    report = await archive.import_(target, MemoryRegistry(), io.StringIO(await exported(log, registry)))
    assert not report.ok
    [problem] = report.problems
    assert (problem.kind, problem.subject) == ("conflict", "a")
    assert problem.line == 5  # header, definition, events 1 and 2 of a, then event 3
    assert "event 3 differs from the target's (different chainhash, data)" in problem.message
    assert await target.read("a") == mine  # left as it was: nothing appended after the conflict
    assert await target.read("b") == await log.read("b")  # the others are imported


async def test_a_definition_conflict_is_reported_and_its_executions_skipped() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(definition("wf", version=1))
    await registry.register(definition("other", version=1))
    await log.append("a", 0, chain(history("a", 3)))
    await log.append("o", 0, chain(history("o", 3, workflow="other")))
    target, target_registry = MemoryEventLog(), MemoryRegistry()
    await target_registry.register(definition("wf", version=1, url="https://example.test/different"))

    report = await archive.import_(target, target_registry, io.StringIO(await exported(log, registry)))
    found = {(p.kind, p.subject) for p in report.problems}
    assert found == {("definition_conflict", "wf v1"), ("conflict", "a")}
    assert await target.read("a") == []
    assert await target.read("o") == await log.read("o")
    assert report.definitions_added == 1
    lines = report.render()
    assert any(line.startswith("definition_conflict: line ") and "wf v1" in line for line in lines)


async def test_export_reads_and_import_appends_in_bounded_pages() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(definition("wf", version=1))
    await log.append("long", 0, chain(history("long", 23)))
    await log.append("short", 0, chain(history("short", 2)))
    reads: list[int | None] = []
    appends: list[int] = []

    class Spy(MemoryEventLog):
        async def read(
            self, execution_id: str, after_sequence: int = 0, limit: int | None = None
        ) -> list[Envelope]:
            reads.append(limit)
            return await super().read(execution_id, after_sequence, limit)

        async def append(self, execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
            appends.append(len(events))
            await super().append(execution_id, expected_sequence, events)

    spy = Spy()
    spy._events, spy._summaries = log._events, log._summaries
    text = await exported(spy, registry, page_size=5)
    assert reads and all(limit is not None and limit <= 5 for limit in reads)
    assert len(reads) == 5 + 1  # long: 5+5+5+5+3; short: 2

    reads.clear()
    target = Spy()
    report = await archive.import_(target, MemoryRegistry(), io.StringIO(text), batch_size=4)
    assert report.ok and report.events_appended == 25
    assert appends == [4, 4, 4, 4, 4, 3, 2]
    reads.clear()
    again = await archive.import_(target, MemoryRegistry(), io.StringIO(text), batch_size=4)
    assert again.events_unchanged == 25
    assert reads and all(limit is not None and limit <= 4 for limit in reads)


async def test_export_of_one_workflow() -> None:
    log, registry = MemoryEventLog(), MemoryRegistry()
    for name in ("wf", "other"):
        await registry.register(definition(name, version=1))
        await registry.register(definition(name, version=2, url="https://example.test/v2"))
    await log.append("a", 0, chain(history("a", 3)))
    await log.append("o", 0, chain(history("o", 4, workflow="other")))
    records = [json.loads(line) for line in (await exported(log, registry, workflow="other")).splitlines()]
    assert [
        (r["definition"]["name"], r["definition"]["version"]) for r in records if r["kind"] == "definition"
    ] == [
        ("other", 1),
        ("other", 2),
    ]
    assert {r["event"]["subject"] for r in records if r["kind"] == "event"} == {"o"}
    assert records[-1] == {"kind": "footer", "executions": 1, "events": 4, "definitions": 2}


async def test_envelopes_round_trip_byte_for_byte() -> None:
    """Unicode, nesting, actor and causation id, a legacy event without a hash: all kept."""
    log = MemoryEventLog()
    first = dataclasses.replace(
        started("u", input={"name": "Zoë ✓", "nested": [1, 2.5, None, {"b": 1, "a": 2}]}),
        actor="user:ada",
        causationid="cmd-1",
    )
    events = [first, event("u", 2, data={"z": 1, "a": "é"})]  # unchained (written before chaining)
    await log.append("u", 0, events)
    text = await exported(log, MemoryRegistry())
    assert "Zoë ✓" in text  # UTF-8, not escaped
    target = MemoryEventLog()
    assert (await archive.import_(target, MemoryRegistry(), io.StringIO(text))).ok
    assert [e.to_bytes() for e in await target.read("u")] == [e.to_bytes() for e in events]


# -- malformed files ---------------------------------------------------------------------------


async def _import_text(text: str) -> archive.ImportReport:
    return await archive.import_(MemoryEventLog(), MemoryRegistry(), io.StringIO(text))


async def _valid_text() -> str:
    log, registry = MemoryEventLog(), MemoryRegistry()
    await registry.register(definition("wf", version=1))
    await log.append("a", 0, chain(history("a", 3)))
    return await exported(log, registry)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [*lines[:3], "{not json", *lines[3:]], "line 4: not JSON"),
        (lambda lines: [*lines[:3], '{"kind": "event", "n": NaN}', *lines[3:]], "line 4: not JSON: NaN"),
        (lambda lines: [*lines[:3], '{"kind": "event", "n": 1e400}', *lines[3:]], "line 4: not JSON: the number"),
        (lambda lines: [*lines[:3], "[1, 2]", *lines[3:]], "line 4: not a JSON object"),
        (
            lambda lines: [*lines[:2], '{"kind": "event", "event": {"id": "x"}}', *lines[2:]],
            "line 3: not an orchestrator event envelope",
        ),
        (lambda lines: [*lines[:2], '{"kind": "surprise"}', *lines[2:]], "line 3: unknown kind 'surprise'"),
        (
            lambda lines: [*lines[:1], '{"kind": "definition", "definition": {"name": 5}}', *lines[1:]],
            "line 2: not a valid workflow definition",
        ),
        (lambda lines: lines[1:], "line 1: not an orchestrator-export file"),
        (
            lambda lines: [lines[0].replace('"version":1', '"version":2'), *lines[1:]],
            "line 1: format version 2 is newer",
        ),
        (lambda lines: lines[:-1], "line 5: the file ends without a footer (truncated?)"),
        (lambda lines: [*lines[:3], *lines[4:]], "the footer says 3 events, the file holds 2"),
        (lambda lines: [*lines, lines[2]], "line 7: nothing may follow the footer"),
        (lambda lines: [], "the file is empty"),
    ],
)
async def test_a_malformed_file_names_the_line(edit: Any, message: str) -> None:
    lines = (await _valid_text()).splitlines()
    with pytest.raises(ArchiveError, match=re.escape(message)):
        await _import_text("\n".join(edit(lines)) + "\n")


async def test_blank_lines_are_ignored() -> None:
    text = (await _valid_text()).replace("\n", "\n\n")
    assert (await _import_text(text)).events_appended == 3


async def test_a_sequence_gap_in_the_file_is_reported_for_its_execution() -> None:
    lines = (await _valid_text()).splitlines()
    report = await _import_text(
        "\n".join([*lines[:3], *lines[4:-1], lines[-1].replace('"events":3', '"events":2')])
    )
    [problem] = report.problems
    assert (problem.kind, problem.subject, problem.line) == ("invalid", "a", 4)
    assert "sequence 3 follows 1" in problem.message


async def test_a_retention_archive_imports_back(tmp_path: Path) -> None:
    """Retention writes the export format: its files restore deleted executions."""
    from orchestrator.history.retention import RetentionSweeper
    from schemas.validation import parse_definition

    now = 1_800_000_000.0
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings, clock=lambda: now) as runtime:
        kept = {
            "name": "kept",
            "retention": {"days": 1, "archive": True},
            "steps": [{"name": "a", "type": "task", "connector": "noop"}],
        }
        await runtime.register(parse_definition(kept))
        execution_id = (await runtime.start_execution("kept", {})).execution_id
        await runtime.wait(execution_id, timeout=10)
        original = await runtime.log.read(execution_id)
        sweeper = RetentionSweeper(
            runtime.log, runtime.registry, clock=lambda: now + 3 * 86_400, archive_dir=tmp_path
        )
        report = await sweeper.sweep()
        assert report.expired == [execution_id]
        text = await asyncio.to_thread(Path(report.archived[0]).read_text, encoding="utf-8")
        lines = text.splitlines(keepends=True)
        restored = await archive.import_(runtime.log, runtime.registry, lines)
        assert restored.ok and restored.definitions_unchanged == 1
        assert [e.to_bytes() for e in await runtime.log.read(execution_id)] == [
            e.to_bytes() for e in original
        ]
        assert (await integrity.verify(runtime.log, runtime.registry)).problems == []
