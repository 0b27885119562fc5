"""Replay recorded executions against a workflow version: would version V decide the same?

``verify_recorded`` samples up to N recorded executions of a workflow (newest first, any
version unless ``recorded_version`` is given), reads each whole history page by page, and runs
``replay.verify_history`` with the graph of version V, whatever version each execution was
recorded on. It is what ``orchestrator replay verify`` and ``POST /api/v1/replay/verify`` run,
e.g. in CI before a new version is deployed.

About the version number: every decision is re-derived with V's graph (the graph is passed in;
nothing is looked up by the version the history names). The start command is rebuilt from the
recorded ``ExecutionStarted``, so the replayed start echoes the recorded version, and
``execution.version`` in expressions reads the recorded number: the version number itself is
expected to differ and is never reported as a divergence. Only the decisions are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.events import Event
from orchestrator.core.replay import Divergence, verify_history
from orchestrator.history import pager
from orchestrator.history.timeline import Block, Table, compact, lines_of
from orchestrator.ports import EventLog, ExecutionQuery, ExecutionSummary, Registry, UnknownWorkflow
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph

DEFAULT_SAMPLE = 100
MAX_SAMPLE = 10_000


async def recorded_executions(
    log: EventLog,
    workflow: str,
    sample: int = DEFAULT_SAMPLE,
    *,
    statuses: Collection[str] | None = None,
    recorded_version: int | None = None,
    tenant: str | None = None,
) -> list[ExecutionSummary]:
    """Up to ``sample`` executions of ``workflow``, newest first, filtered by status, version
    and tenant (every tenant's when None)."""
    wanted = set(statuses) if statuses else None
    only = next(iter(wanted)) if wanted is not None and len(wanted) == 1 else None
    found: list[ExecutionSummary] = []
    if sample < 1:
        return found
    query = ExecutionQuery(workflow=workflow, status=only, tenant=tenant)
    async for summary in pager.executions(log, query):
        if wanted is not None and summary.status not in wanted:
            continue
        if recorded_version is not None and summary.version != recorded_version:
            continue
        found.append(summary)
        if len(found) == sample:
            break
    return found


def _event(event: Event | None) -> dict[str, Any] | None:
    return None if event is None else {"type": event.type, "data": event.data}


@dataclass(frozen=True, slots=True)
class ExecutionCheck:
    """The result for one recorded execution."""

    execution_id: str
    recorded_version: int
    status: str
    events: int
    divergence: Divergence | None = None

    @property
    def ok(self) -> bool:
        return self.divergence is None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "execution_id": self.execution_id,
            "recorded_version": self.recorded_version,
            "status": self.status,
            "events": self.events,
            "result": "ok" if self.ok else "diverged",
        }
        if self.divergence is not None:
            body["divergence"] = {
                "sequence": self.divergence.sequence,
                "reason": self.divergence.reason,
                "expected": _event(self.divergence.expected),
                "recorded": _event(self.divergence.recorded),
            }
        return body


@dataclass(frozen=True, slots=True)
class VerifyReport:
    workflow: str
    version: int | None  # None: a definition not registered (e.g. from a file)
    sample: int
    recorded_version: int | None = None
    statuses: tuple[str, ...] = ()
    checks: list[ExecutionCheck] = field(default_factory=list)

    @property
    def diverged(self) -> int:
        return sum(not check.ok for check in self.checks)

    @property
    def ok(self) -> bool:
        return self.diverged == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "version": self.version,
            "sample": self.sample,
            "recorded_version": self.recorded_version,
            "statuses": list(self.statuses),
            "ok": self.ok,
            "summary": {
                "checked": len(self.checks),
                "ok": len(self.checks) - self.diverged,
                "diverged": self.diverged,
            },
            "executions": [check.to_dict() for check in self.checks],
        }

    def render(self) -> list[str]:
        return render(self.to_dict())


def verify_executions(
    graph: WorkflowGraph, histories: list[tuple[ExecutionSummary, list[Envelope]]]
) -> list[ExecutionCheck]:
    """Pure: check each recorded history against ``graph``."""
    return [
        ExecutionCheck(
            summary.execution_id,
            summary.version,
            summary.status,
            len(events),
            verify_history(graph, events),
        )
        for summary, events in histories
    ]


async def verify_recorded(
    log: EventLog,
    registry: Registry,
    workflow: str,
    version: int | None = None,
    sample: int = DEFAULT_SAMPLE,
    *,
    statuses: Collection[str] | None = None,
    recorded_version: int | None = None,
    definition: WorkflowDefinition | None = None,
    progress: Callable[[int], None] | None = None,
    tenant: str | None = None,
) -> VerifyReport:
    """Would ``version`` of ``workflow`` (latest when None; or ``definition``, e.g. read from a
    file and not registered yet) decide the same on its recorded executions (of ``tenant``, or
    of every tenant when None)? UnknownWorkflow. ``progress(1)`` after each execution replayed."""
    if not 1 <= sample <= MAX_SAMPLE:
        raise ValueError(f"sample must be between 1 and {MAX_SAMPLE}, got {sample}")
    if definition is None:
        if not await registry.versions(workflow):
            raise UnknownWorkflow(f"unknown workflow {workflow!r}")
        definition = await registry.get(workflow, version)
    graph = WorkflowGraph.build(definition)  # version V's graph, for every execution
    summaries = await recorded_executions(
        log, workflow, sample, statuses=statuses, recorded_version=recorded_version, tenant=tenant
    )
    checks = []
    for summary in summaries:  # one history in memory at a time
        events = await pager.read_all(log, summary.execution_id)
        checks += verify_executions(graph, [(summary, events)])
        if progress is not None:
            progress(1)
    return VerifyReport(
        workflow=workflow,
        version=definition.version,
        sample=sample,
        recorded_version=recorded_version,
        statuses=tuple(sorted(statuses or ())),
        checks=checks,
    )


def render(report: dict[str, Any]) -> list[str]:
    """Lines for humans, from ``VerifyReport.to_dict()``."""
    return lines_of(blocks(report))


def blocks(report: dict[str, Any]) -> list[Block]:
    """Lines and the table of executions, from ``VerifyReport.to_dict()``."""
    version = "(unregistered)" if report.get("version") is None else f"v{report.get('version')}"
    summary = report.get("summary") or {}
    executions = report.get("executions") or []
    head = f"replay {report.get('workflow')} {version} over recorded executions"
    if report.get("recorded_version") is not None:
        head += f" of v{report['recorded_version']}"
    lines: list[Block] = [head]
    if not executions:
        return [*lines, "no recorded executions matched: nothing to verify"]
    rows = []
    for check in executions:
        divergence = check.get("divergence") or {}
        rows.append(
            (
                check.get("execution_id"),
                f"v{check.get('recorded_version')}",
                check.get("status"),
                check.get("events"),
                check.get("result"),
                divergence.get("sequence"),
                _clip(divergence.get("reason")),
            )
        )
    lines.append(Table(("EXECUTION", "RECORDED", "STATUS", "EVENTS", "RESULT", "SEQ", "REASON"), tuple(rows)))
    for check in executions:
        divergence = check.get("divergence")
        if not divergence:
            continue
        lines += ["", f"{check.get('execution_id')} diverged at sequence {divergence.get('sequence')}:"]
        lines.append(f"  reason:   {divergence.get('reason')}")
        lines.append(f"  expected: {_describe(divergence.get('expected'))}")
        lines.append(f"  recorded: {_describe(divergence.get('recorded'))}")
    lines += [
        "",
        f"checked {summary.get('checked', 0)}: {summary.get('ok', 0)} ok, "
        f"{summary.get('diverged', 0)} diverged",
    ]
    return lines


def _clip(reason: Any, width: int = 70) -> str | None:
    if reason is None:
        return None
    text = " ".join(str(reason).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _describe(event: Any) -> str:
    if not isinstance(event, dict):
        return "nothing"
    return f"{event.get('type')} {compact(event.get('data'), 100)}"
