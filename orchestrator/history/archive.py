"""Export and import: whole event logs and registries as one streaming JSON Lines file.

The format (``docs/data.md``) is one JSON object per line::

    {"kind":"header","format":"orchestrator-export","version":1,"exported_at":"..."}
    {"kind":"data_key",...}                          wrapped data keys, when encrypted (sealed.py)
    {"kind":"definition","definition":{...}}         every version of every workflow
    {"kind":"event","event":{...CloudEvent...}}      per execution, in sequence order
    {"kind":"footer","executions":N,"events":M,"definitions":K}

Both directions run in bounded memory whatever the size: export reads each history in pages of
``page_size`` events and writes them as it goes; import reads line by line and buffers at most
one batch of events. Import is idempotent: events the target already holds are compared and
skipped, a differing one is reported as a conflict for its execution (never overwritten), and a
definition whose name and version exist with other content is reported, not replaced.
Retention archives (``orchestrator.history.retention``) are files of this format too.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from orchestrator.core.timefmt import rfc3339
from orchestrator.history import pager, sealed
from orchestrator.history.files import atomic_text_offloop, drain
from orchestrator.ports import ConcurrencyError, EventLog, Registry, VersionConflict
from schemas import strict_json
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope, EnvelopeError

FORMAT = "orchestrator-export"
VERSION = 1
PAGE_SIZE = 1000  # events per read when exporting (and per comparison read when importing)
BATCH_SIZE = 500  # events per append when importing
ARCHIVE_DEPTH = 4 * strict_json.MAX_DEPTH  # an event's data nests a few levels into its line
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class ArchiveError(ValueError):
    """The file is not a valid export; the message names the line."""


# -- export ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ExportReport:
    executions: int = 0
    events: int = 0
    definitions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"executions": self.executions, "events": self.events, "definitions": self.definitions}


async def export(
    log: EventLog,
    registry: Registry,
    out: TextIO,
    *,
    workflow: str | None = None,
    page_size: int = PAGE_SIZE,
    clock: Callable[[], float] = time.time,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write every definition version and every execution's history (only ``workflow``'s if given).

    Executions come in the order ``EventLog.execution_ids()`` yields them, each history whole and
    in sequence order, read ``page_size`` events at a time. ``progress(1)`` after each execution.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    report = ExportReport()
    write_header(out, clock)
    await sealed.write_data_keys(out, log)
    async for definition in _definitions(registry, workflow):
        write_definition(out, definition)
        report.definitions += 1
    async for execution_id in log.execution_ids():
        if workflow is not None and await _workflow_of(log, execution_id) != workflow:
            continue
        count = await write_history(log, out, execution_id, page_size)
        if count:
            report.executions += 1
            report.events += count
            if progress is not None:
                progress(1)
    write_footer(out, report)
    return report


def write_header(out: TextIO, clock: Callable[[], float] = time.time) -> None:
    _write(out, {"kind": "header", "format": FORMAT, "version": VERSION, "exported_at": rfc3339(clock())})


def write_definition(out: TextIO, definition: WorkflowDefinition) -> None:
    _write(out, {"kind": "definition", "definition": definition.model_dump(mode="json")})


async def write_history(log: EventLog, out: TextIO, execution_id: str, page_size: int = PAGE_SIZE) -> int:
    """One execution's events in sequence order, ``page_size`` at a time; how many. Sealed
    when the log encrypts, else each envelope's own canonical bytes."""
    count = 0
    async for events in pager.pages(log, execution_id, page=page_size):
        out.writelines(await sealed.event_lines(log, events))
        count += len(events)
        await drain(out)  # writing to a Spool: to the file, off the event loop
    return count


def write_footer(out: TextIO, report: ExportReport) -> None:
    _write(out, {"kind": "footer", **report.to_dict()})


async def _definitions(registry: Registry, workflow: str | None) -> AsyncIterator[WorkflowDefinition]:
    for latest in await registry.list():
        if workflow is not None and latest.name != workflow:
            continue
        for version in await registry.versions(latest.name):
            yield await registry.get(latest.name, version)


async def _workflow_of(log: EventLog, execution_id: str) -> str | None:
    summary = await log.summary(execution_id)
    if summary is not None:
        return summary.workflow
    first = await log.read(execution_id, 0, 1)
    return first[0].workflow if first else None


def _write(out: TextIO, record: dict[str, Any]) -> None:
    out.write(_dumps(record) + "\n")


# -- import ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """Something import did not apply: ``kind`` is ``definition_conflict``, ``conflict`` or ``invalid``."""

    kind: str
    subject: str  # "name vN" for definitions, the execution id for events
    line: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "line": self.line, "message": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.subject}: {self.message}"


@dataclass(slots=True)
class ImportReport:
    definitions_added: int = 0
    definitions_unchanged: int = 0
    executions: int = 0  # executions seen in the file
    events_appended: int = 0
    events_unchanged: int = 0  # already in the target, identical
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "definitions_added": self.definitions_added,
            "definitions_unchanged": self.definitions_unchanged,
            "executions": self.executions,
            "events_appended": self.events_appended,
            "events_unchanged": self.events_unchanged,
            "problems": [p.to_dict() for p in self.problems],
        }

    def render(self) -> list[str]:
        lines = [
            f"definitions: {self.definitions_added} added, {self.definitions_unchanged} already present",
            f"executions: {self.executions}; events: {self.events_appended} appended, "
            f"{self.events_unchanged} already present",
        ]
        lines += [f"{p.kind}: {p}" for p in self.problems]
        return lines


class _Execution:
    """Import state of the execution whose events are being read: one batch buffered at most."""

    def __init__(self, execution_id: str, target_last: int, start_line: int) -> None:
        self.execution_id = execution_id
        self.target_last = target_last  # the target's last sequence (grows as batches land)
        self.last_seen = 0  # the file's last sequence for this execution
        self.buffer: list[Envelope] = []
        self.compare: deque[Envelope] = deque()  # a page of the target's events, for comparison
        self.failed = False  # a problem was reported: the rest of its events are skipped
        self.start_line = start_line


class _Importer:
    def __init__(
        self, log: EventLog, registry: Registry, batch_size: int, progress: Callable[[int], None] | None
    ) -> None:
        self.log = log
        self.registry = registry
        self.batch_size = batch_size
        self.progress = progress
        self.report = ImportReport()
        self.current: _Execution | None = None
        self.seen_definitions = 0
        self.seen_events = 0
        self.conflicting: set[tuple[str, int]] = set()  # definitions not imported

    async def definition(self, raw: Any, line: int) -> None:
        if not isinstance(raw, dict):
            raise ArchiveError(f"line {line}: 'definition' must be an object")
        try:
            definition = WorkflowDefinition.model_validate(raw)
        except ValueError as exc:
            raise ArchiveError(f"line {line}: not a valid workflow definition: {_first_line(exc)}") from None
        self.seen_definitions += 1
        existing = set(await self.registry.versions(definition.name))
        try:
            stored = await self.registry.register(definition)
        except VersionConflict:
            version = definition.version or 0
            self.conflicting.add((definition.name, version))
            self.report.problems.append(
                ImportProblem(
                    "definition_conflict",
                    f"{definition.name} v{version}",
                    line,
                    "the target holds this name and version with different content; "
                    "not imported, and neither are executions of it",
                )
            )
            return
        if stored.version in existing:
            self.report.definitions_unchanged += 1
        else:
            self.report.definitions_added += 1

    async def event(self, raw: Any, line: int) -> None:
        if not isinstance(raw, dict):
            raise ArchiveError(f"line {line}: 'event' must be an object")
        try:
            envelope = await sealed.open_event(self.log, raw)
        except EnvelopeError as exc:
            raise ArchiveError(f"line {line}: {exc}") from None
        self.seen_events += 1
        current = self.current
        if current is None or current.execution_id != envelope.subject:
            await self.flush()
            current = self.current = await self._begin(envelope, line)
        if current.failed:
            return
        if envelope.sequence != current.last_seen + 1 and current.last_seen:
            self._fail(current, line, "invalid", f"sequence {envelope.sequence} follows {current.last_seen}")
            return
        current.last_seen = envelope.sequence
        if envelope.sequence <= current.target_last:
            await self._compare(current, envelope, line)
        elif envelope.sequence == current.target_last + len(current.buffer) + 1:
            current.buffer.append(envelope)
            if len(current.buffer) >= self.batch_size:
                await self._append(current, line)
        else:
            have = current.target_last + len(current.buffer)
            self._fail(current, line, "conflict", f"event {envelope.sequence} would leave a gap after {have}")

    async def _begin(self, envelope: Envelope, line: int) -> _Execution:
        self.report.executions += 1
        if self.progress is not None:
            self.progress(1)
        summary = await self.log.summary(envelope.subject)
        current = _Execution(envelope.subject, summary.last_sequence if summary else 0, line)
        version = (envelope.workflow, envelope.workflowversion)
        if version in self.conflicting:
            self._fail(current, line, "conflict", f"{version[0]} v{version[1]} was not imported (see above)")
        return current

    async def _compare(self, current: _Execution, envelope: Envelope, line: int) -> None:
        if not current.compare or current.compare[0].sequence != envelope.sequence:
            page = await self.log.read(current.execution_id, envelope.sequence - 1, self.batch_size)
            current.compare = deque(page)
        stored = current.compare.popleft() if current.compare else None
        if stored is None or stored.sequence != envelope.sequence:
            self._fail(current, line, "conflict", f"event {envelope.sequence} is missing from the target")
        elif stored != envelope:
            self._fail(
                current,
                line,
                "conflict",
                f"event {envelope.sequence} differs from the target's ({_difference(stored, envelope)}); "
                "the target is left as it is",
            )
        else:
            self.report.events_unchanged += 1

    async def _append(self, current: _Execution, line: int) -> None:
        batch, current.buffer = current.buffer, []
        try:
            await self.log.append(current.execution_id, current.target_last, batch)
        except ConcurrencyError:
            self._fail(
                current, line, "conflict", f"another writer appended after event {current.target_last}"
            )
            return
        except ValueError as exc:  # e.g. a history that does not begin with ExecutionStarted
            self._fail(current, line, "invalid", str(exc))
            return
        current.target_last += len(batch)
        self.report.events_appended += len(batch)

    async def flush(self) -> None:
        current = self.current
        if current is not None and current.buffer and not current.failed:
            await self._append(current, current.start_line)

    def _fail(self, current: _Execution, line: int, kind: str, message: str) -> None:
        current.failed = True
        current.buffer = []
        current.compare.clear()
        self.report.problems.append(ImportProblem(kind, current.execution_id, line, message))


async def import_(
    log: EventLog,
    registry: Registry,
    lines: Iterable[str],
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import an export read line by line (a text stream is an iterable of lines);
    ``progress(1)`` as each execution begins.

    Raises ``ArchiveError`` naming the line for a malformed file; lines before it may have been
    imported already, which is harmless since importing again is idempotent. Conflicts with what
    the target holds are reported in the returned report, never overwritten.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    importer = _Importer(log, registry, batch_size, progress)
    header = footer = False
    number = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        record = _parse(text, number)
        kind = record.get("kind")
        if not header:
            _check_header(record, number)
            header = True
        elif footer:
            raise ArchiveError(f"line {number}: nothing may follow the footer")
        elif kind == "data_key":
            if (problem := await sealed.import_data_key(log, record)) is not None:
                raise ArchiveError(f"line {number}: {problem}")
        elif kind == "definition":
            await importer.definition(record.get("definition"), number)
        elif kind == "event":
            await importer.event(record.get("event"), number)
        elif kind == "footer":
            await importer.flush()
            _check_footer(record, number, importer)
            footer = True
        elif kind == "header":
            raise ArchiveError(f"line {number}: a second header")
        else:
            raise ArchiveError(f"line {number}: unknown kind {kind!r}")
    if not header:
        raise ArchiveError("the file is empty: no header line")
    if not footer:
        await importer.flush()
        raise ArchiveError(f"line {number}: the file ends without a footer (truncated?)")
    return importer.report


def _parse(text: str, number: int) -> dict[str, Any]:
    try:  # strict: a NaN, a 1e400 or a 5000-digit integer is an error here, not in the log
        record = strict_json.loads(text, max_depth=ARCHIVE_DEPTH)
    except strict_json.StrictJSONError as exc:
        raise ArchiveError(f"line {number}: not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ArchiveError(f"line {number}: not a JSON object")
    return record


def _check_header(record: dict[str, Any], number: int) -> None:
    if record.get("kind") != "header" or record.get("format") != FORMAT:
        raise ArchiveError(f"line {number}: not an {FORMAT} file (the first line must be its header)")
    version = record.get("version")
    if not isinstance(version, int) or version < 1:
        raise ArchiveError(f"line {number}: bad format version {version!r}")
    if version > VERSION:
        raise ArchiveError(f"line {number}: format version {version} is newer than this code ({VERSION})")


def _check_footer(record: dict[str, Any], number: int, importer: _Importer) -> None:
    seen = {
        "executions": importer.report.executions,
        "events": importer.seen_events,
        "definitions": importer.seen_definitions,
    }
    for name, count in seen.items():
        if record.get(name) != count:
            raise ArchiveError(
                f"line {number}: the footer says {record.get(name)!r} {name}, the file holds {count}"
            )


def _difference(stored: Envelope, incoming: Envelope) -> str:
    a, b = stored.to_cloudevent(), incoming.to_cloudevent()
    fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return "different " + ", ".join(fields)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- files ------------------------------------------------------------------------------------


async def export_to_file(
    log: EventLog,
    registry: Registry,
    path: str | Path,
    *,
    workflow: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Export into ``path`` atomically, the file written off the event loop
    (``orchestrator.history.files.atomic_text_offloop``), so a server may call it."""
    async with atomic_text_offloop(path) as out:
        report = await export(log, registry, out, workflow=workflow, progress=progress)
    return report


def footer_counts(path: str | Path, tail: int = 4096) -> dict[str, int] | None:
    """The counts in the footer of the export file ``path``, read from its end (None for anything
    but a regular file ending with a footer): totals to show an import's progress against."""
    target = Path(path)
    try:
        if not target.is_file():
            return None
        with target.open("rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - tail))
            lines = [line for line in stream.read().splitlines() if line.strip()]
        record = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):  # unreadable, or the last line is cut or not JSON
        return None
    if not isinstance(record, dict) or record.get("kind") != "footer":
        return None
    return {key: value for key, value in record.items() if key != "kind" and isinstance(value, int)}
