"""``verify``: check that an event log is whole and untampered (``docs/data.md``).

Per history (pure, on envelopes, fed page by page so any length fits in memory):

- sequences are exactly 1..n: no gap, no duplicate, in order;
- the first event is ExecutionStarted and every event's ``subject`` is the execution id;
- the hash chain: each event's ``chainhash`` equals ``chain_hash(previous stored hash, event)``,
  ``""`` before event 1 (and after an event without a hash, as the engine does). A mismatch is
  ``tampered`` and names the first broken sequence. Events without a hash written before
  chaining existed (an unchained prefix) are ``unchained`` warnings; an event without a hash
  after a chained one is ``tampered`` (the engine never goes back to unchained).

Against the rest of the store (``context_problems``, pure too, given what was looked up):

- the summary row exists and its ``last_sequence`` is n (otherwise an ``orphan`` or ``summary``
  problem); a summary with no events is an orphan;
- the history's workflow and version exist in the registry;
- a child's parent (``parent.execution_id`` in ExecutionStarted) exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.events import EXECUTION_STARTED
from orchestrator.history import pager
from orchestrator.ports import EventLog, ExecutionSummary, Registry, UnknownWorkflow
from schemas.envelope import Envelope, chain_hash

PAGE_SIZE = 1000
LIVE_RETRIES = 3  # re-reads of an execution that grows while it is verified
MAX_PER_KIND = 5  # problems of one kind listed per execution; the rest are counted

ERROR = "error"
WARNING = "warning"

# Problem kinds
GAP = "gap"
DUPLICATE = "duplicate"
ORDER = "order"
START = "start"
SUBJECT = "subject"
TAMPERED = "tampered"
UNCHAINED = "unchained"
ORPHAN = "orphan"
SUMMARY = "summary"
UNKNOWN_WORKFLOW = "unknown_workflow"
MISSING_PARENT = "missing_parent"
UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Problem:
    execution_id: str
    kind: str
    message: str
    sequence: int | None = None
    severity: str = ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "kind": self.kind,
            "severity": self.severity,
            "sequence": self.sequence,
            "message": self.message,
        }

    def __str__(self) -> str:
        return f"{self.severity}: {self.execution_id}: {self.kind}: {self.message}"


@dataclass(slots=True)
class HistoryFacts:
    """What one pass over a history found: its problems and what the context checks need."""

    execution_id: str
    events: int = 0
    last_sequence: int = 0
    workflow: str | None = None
    version: int | None = None
    parent_id: str | None = None
    problems: list[Problem] = field(default_factory=list)


class HistoryChecker:
    """The per-history checks, fed in pages: ``feed(page)`` any number of times, then ``finish()``."""

    def __init__(self, execution_id: str) -> None:
        self.facts = HistoryFacts(execution_id)
        self._expected = 1  # the next sequence of a whole history
        self._previous_hash: str | None = None  # None before the first event
        self._chained_seen = False
        self._unchained = 0
        self._first_unchained: int | None = None
        self._tampered = 0
        self._counts: dict[str, int] = {}

    def feed(self, events: Iterable[Envelope]) -> None:
        for event in events:
            self._one(event)

    def finish(self) -> HistoryFacts:
        facts = self.facts
        if self._tampered > 1:
            self._add(TAMPERED, f"{self._tampered - 1} more event(s) after it do not match their hash", None)
        if self._unchained:
            what = "event has" if self._unchained == 1 else "events have"
            self._add(
                UNCHAINED,
                f"{self._unchained} {what} no chainhash, from sequence {self._first_unchained} "
                "(written before hash chaining): not protected against tampering",
                self._first_unchained,
                WARNING,
            )
        for kind, count in sorted(self._counts.items()):
            if count > MAX_PER_KIND:
                facts.problems.append(
                    Problem(facts.execution_id, kind, f"and {count - MAX_PER_KIND} more {kind} problem(s)")
                )
        return facts

    def _one(self, event: Envelope) -> None:
        facts = self.facts
        execution_id = facts.execution_id
        first = facts.events == 0
        facts.events += 1
        sequence = event.sequence
        if first:
            facts.workflow, facts.version = event.workflow, event.workflowversion
            if event.type != EXECUTION_STARTED:
                self._add(START, f"the first event is {event.type}, not {EXECUTION_STARTED}", sequence)
            elif isinstance(event.data, dict) and isinstance(event.data.get("parent"), dict):
                parent = event.data["parent"].get("execution_id")
                facts.parent_id = parent if isinstance(parent, str) else None
        if event.subject != execution_id:
            self._add(SUBJECT, f"event {sequence} has subject {event.subject!r}", sequence)
        if sequence == self._expected:
            self._expected += 1
        elif sequence > self._expected:
            missing = (
                f"event {self._expected} is missing"
                if sequence == self._expected + 1
                else f"events {self._expected}..{sequence - 1} are missing"
            )
            self._add(GAP, missing, self._expected)
            self._expected = sequence + 1
        elif sequence == self._expected - 1 or sequence == facts.last_sequence:
            self._add(DUPLICATE, f"event {sequence} appears more than once", sequence)
        else:
            self._add(ORDER, f"event {sequence} comes after event {facts.last_sequence}", sequence)
        facts.last_sequence = max(facts.last_sequence, sequence)
        self._chain(event)

    def _chain(self, event: Envelope) -> None:
        previous = self._previous_hash or ""
        stored = event.chainhash
        self._previous_hash = stored
        if stored is None:
            if self._chained_seen:
                self._tamper(event.sequence, f"event {event.sequence} has no chainhash after chained events")
            else:
                self._unchained += 1
                if self._first_unchained is None:
                    self._first_unchained = event.sequence
            return
        self._chained_seen = True
        expected = chain_hash(previous, event)
        if stored != expected:
            self._tamper(
                event.sequence,
                f"the hash chain breaks here: stored chainhash {stored[:12]}..., recomputed "
                f"{expected[:12]}...; this event was changed after it was written",
            )

    def _tamper(self, sequence: int, message: str) -> None:
        self._tampered += 1
        if self._tampered == 1:  # the first broken sequence; the rest are counted
            self.facts.problems.append(Problem(self.facts.execution_id, TAMPERED, message, sequence))

    def _add(self, kind: str, message: str, sequence: int | None, severity: str = ERROR) -> None:
        self._counts[kind] = count = self._counts.get(kind, 0) + 1
        if count <= MAX_PER_KIND:
            self.facts.problems.append(Problem(self.facts.execution_id, kind, message, sequence, severity))


def check_history(execution_id: str, events: Iterable[Envelope]) -> HistoryFacts:
    """The per-history checks of a whole history (pure)."""
    checker = HistoryChecker(execution_id)
    checker.feed(events)
    return checker.finish()


def context_problems(
    facts: HistoryFacts,
    summary: ExecutionSummary | None,
    *,
    workflow_known: bool = True,
    parent_exists: bool = True,
) -> list[Problem]:
    """The checks of a history against its summary row, the registry and its parent (pure)."""
    execution_id = facts.execution_id
    problems: list[Problem] = []
    if facts.events == 0:
        if summary is not None:
            problems.append(
                Problem(
                    execution_id,
                    ORPHAN,
                    f"a summary row (last sequence {summary.last_sequence}) but no events",
                )
            )
        return problems
    if summary is None:
        problems.append(Problem(execution_id, ORPHAN, f"{facts.events} events but no summary row"))
    else:
        if summary.last_sequence != facts.last_sequence:
            problems.append(
                Problem(
                    execution_id,
                    SUMMARY,
                    f"the summary says last sequence {summary.last_sequence}, the history ends at "
                    f"{facts.last_sequence}",
                )
            )
        if (summary.workflow, summary.version) != (facts.workflow, facts.version):
            problems.append(
                Problem(
                    execution_id,
                    SUMMARY,
                    f"the summary says {summary.workflow} v{summary.version}, the history "
                    f"{facts.workflow} v{facts.version}",
                )
            )
    if not workflow_known:
        problems.append(
            Problem(
                execution_id,
                UNKNOWN_WORKFLOW,
                f"workflow {facts.workflow} v{facts.version} is not in the registry",
            )
        )
    if facts.parent_id is not None and not parent_exists:
        problems.append(
            Problem(execution_id, MISSING_PARENT, f"parent execution {facts.parent_id} does not exist")
        )
    return problems


@dataclass(slots=True)
class IntegrityReport:
    executions: int = 0
    events: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def by_execution(self) -> dict[str, list[Problem]]:
        grouped: dict[str, list[Problem]] = {}
        for problem in self.problems:
            grouped.setdefault(problem.execution_id, []).append(problem)
        return grouped

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "executions": self.executions,
            "events": self.events,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": {k: [p.to_dict() for p in v] for k, v in self.by_execution().items()},
        }

    def render(self) -> list[str]:
        lines: list[str] = []
        for execution_id, problems in self.by_execution().items():
            lines.append(f"execution {execution_id}:")
            for p in problems:
                at = f" at sequence {p.sequence}" if p.sequence is not None else ""
                lines.append(f"  {p.severity} {p.kind}{at}: {p.message}")
        errors, warnings = len(self.errors), len(self.warnings)
        verdict = "clean" if not self.problems else ("ok with warnings" if self.ok else "PROBLEMS FOUND")
        lines.append(
            f"verified {self.executions} executions, {self.events} events: "
            f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} ({verdict})"
        )
        return lines


async def verify(
    log: EventLog,
    registry: Registry,
    *,
    workflow: str | None = None,
    page_size: int = PAGE_SIZE,
    progress: Callable[[int], None] | None = None,
) -> IntegrityReport:
    """Check every execution ``log.execution_ids()`` yields (only ``workflow``'s if given);
    ``progress(1)`` after each one checked.

    Safe on a live log: when an execution grows while it is read, the summary read after the
    history is ahead of it, and the new events are read too before the two are compared.
    """
    report = IntegrityReport()
    known: dict[tuple[str, int], bool] = {}
    async for execution_id in log.execution_ids():
        summary = await log.summary(execution_id)
        if workflow is not None and summary is not None and summary.workflow != workflow:
            continue
        checker = HistoryChecker(execution_id)
        readable = await _read_into(log, checker, page_size)
        for _ in range(LIVE_RETRIES):
            summary = await log.summary(execution_id)
            if not readable or summary is None or summary.last_sequence <= checker.facts.last_sequence:
                break
            readable = await _read_into(log, checker, page_size)
        facts = checker.finish()
        if workflow is not None and (facts.workflow or (summary.workflow if summary else None)) != workflow:
            continue
        report.executions += 1
        report.events += facts.events
        workflow_known = True
        if facts.workflow is not None and facts.version is not None:
            key = (facts.workflow, facts.version)
            if key not in known:
                known[key] = await _registered(registry, *key)
            workflow_known = known[key]
        parent_exists = True
        if facts.parent_id is not None:
            parent_exists = await _exists(log, facts.parent_id)
        report.problems += facts.problems
        report.problems += context_problems(
            facts, summary, workflow_known=workflow_known, parent_exists=parent_exists
        )
        if progress is not None:
            progress(1)
    return report


async def verify_history(log: EventLog, execution_id: str, page_size: int = PAGE_SIZE) -> HistoryFacts:
    """The per-history checks of one stored history, read ``page_size`` events at a time."""
    checker = HistoryChecker(execution_id)
    await _read_into(log, checker, page_size)
    return checker.finish()


async def _read_into(log: EventLog, checker: HistoryChecker, page_size: int) -> bool:
    """Feed the events after the checker's last sequence, page by page; False if unreadable."""
    execution_id = checker.facts.execution_id
    after = checker.facts.last_sequence
    chunks = pager.pages(log, execution_id, after, page=page_size)
    while True:
        try:
            events = await anext(chunks, None)
        except ValueError as exc:  # stored bytes that are not an envelope
            checker.facts.problems.append(
                Problem(execution_id, UNREADABLE, f"events after sequence {after} cannot be read: {exc}")
            )
            return False
        if events is None:
            return True
        checker.feed(events)
        after = events[-1].sequence


async def _registered(registry: Registry, name: str, version: int) -> bool:
    try:
        await registry.get(name, version)
    except UnknownWorkflow:
        return False
    return True


async def _exists(log: EventLog, execution_id: str) -> bool:
    if await log.summary(execution_id) is not None:
        return True
    return bool(await log.read(execution_id, 0, 1))
