"""Redrive: re-run a finished execution as a new one, reusing what already succeeded.

The original is never touched: the redrive is a new execution (new id) whose ``ExecutionStarted``
carries ``reuse`` (step name -> recorded output). The machine takes a reused step's output on
its first visit instead of running it (``StepSucceeded {"reused": true}``), so the new history
says exactly what was reused and still verifies with ``orchestrator.core.replay``. Links record the
relation both ways (``redriven_as`` on the original, ``redrive_of`` on the new execution).

``Runtime.redrive`` / ``Runtime.redrive_many`` are the entry points; they pass themselves as the
``RedriveHost`` this module needs (so it never imports the runtime). The helpers here that take
events are pure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

from orchestrator.core import events as ev
from orchestrator.core.events import EventLike
from orchestrator.core.machine import REUSABLE_STEPS, CommandRejected
from orchestrator.core.state import ExecutionState, fold
from orchestrator.core.timefmt import rfc3339
from orchestrator.history import pager
from orchestrator.ports import EventLog, ExecutionQuery, ExecutionSummary, Link, Registry
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph
from schemas.tenant import DEFAULT_TENANT

REDRIVE_OF: Final = "redrive_of"
REDRIVEN_AS: Final = "redriven_as"


class _Keep:
    """The ``input`` default: keep the original's input (``None`` is an input like any other)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


class RedriveInvalid(ValueError):
    """The redrive cannot be made as asked (unknown step, no failure to start from, ...)."""


class ExecutionRunning(CommandRejected):
    """The original has not finished: a redrive would race it."""


@dataclass(frozen=True, slots=True)
class RedriveResult:
    execution_id: str
    created: bool  # False: the dedup key matched an earlier redrive; nothing was started
    redrive_of: str
    from_step: str | None
    version: int
    reused: list[str] = field(default_factory=list)  # steps taken from the original

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class BulkRedriveResult:
    matched: list[str]
    batch_key: str
    dry_run: bool
    started: list[str] = field(default_factory=list)  # new executions
    existing: list[str] = field(default_factory=list)  # redrives an earlier identical batch made
    errors: list[dict[str, str]] = field(default_factory=list)  # {execution_id, error}
    truncated: bool = False  # the scan stopped at its limit: more may match (narrow the filters)

    def to_dict(self) -> dict[str, Any]:
        return {"count": len(self.matched), **asdict(self)}


class Graphs(Protocol):
    async def graph(self, workflow: str, version: int) -> WorkflowGraph: ...


class Started(Protocol):
    @property
    def execution_id(self) -> str: ...
    @property
    def created(self) -> bool: ...


class RedriveHost(Protocol):
    """What a redrive needs of the runtime (``orchestrator.runtime.Runtime`` is one)."""

    @property
    def log(self) -> EventLog: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def engine(self) -> Graphs: ...
    @property
    def clock(self) -> Callable[[], float]: ...

    async def summary(self, execution_id: str, *, tenant: str = DEFAULT_TENANT) -> ExecutionSummary:
        """The execution's summary; raises a ``LookupError`` when ``tenant`` has no such execution."""
        ...

    async def start_execution(
        self,
        workflow: str,
        input: Any = None,
        *,
        version: int | None = None,
        dedup_key: str | None = None,
        actor: str | None = None,
        tenant: str = "default",
        metadata: dict[str, Any] | None = None,
        reuse: dict[str, Any] | None = None,
        debounce: bool = True,
    ) -> Started: ...


def link_to_dict(link: Link) -> dict[str, Any]:
    return {
        "execution_id": link.execution_id,
        "other_id": link.other_id,
        "relation": link.relation,
        "created_at": link.created_at,
    }


# -- pure helpers over a recorded history -------------------------------------------------------


def failed_step(events: Sequence[EventLike]) -> str | None:
    """The step whose failure failed the execution: the innermost one when it failed inside a
    parallel (``StepFailed.failed_step`` names the step that failed the branch). None when the
    history has no ``ExecutionFailed`` or it names no step."""
    failure = next((e for e in reversed(events) if e.type == ev.EXECUTION_FAILED), None)
    if failure is None or not isinstance(failure.data, dict):
        return None
    step = failure.data.get("step")
    seen: set[str] = set()
    while isinstance(step, str) and step not in seen:
        seen.add(step)
        inner = next(
            (
                e.data.get("failed_step")
                for e in reversed(events)
                if e.type == ev.STEP_FAILED and isinstance(e.data, dict) and e.data.get("step") == step
            ),
            None,
        )
        if not isinstance(inner, str):
            break
        step = inner
    return step if isinstance(step, str) else None


def reusable_outputs(events: Sequence[EventLike], before_step: str, graph: WorkflowGraph) -> dict[str, Any]:
    """Outputs of the steps that succeeded before ``before_step`` was first entered (the first
    event naming it); the last output of a step wins. Only steps of ``graph`` the machine can
    reuse (tasks, subworkflows, waits, events): choices, parallels, succeed and fail re-run."""
    outputs: dict[str, Any] = {}
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        if data.get("step") == before_step:
            break
        if event.type == ev.STEP_SUCCEEDED and isinstance(data.get("step"), str):
            outputs[data["step"]] = data.get("output")
    return {
        name: output for name, output in outputs.items() if isinstance(graph.steps.get(name), REUSABLE_STEPS)
    }


def batch_key_for(query: ExecutionQuery, **choices: Any) -> str:
    """A bulk request's identity: the same filters and mode give the same key (limit, rate and
    dry run aside), so re-submitting it redrives each execution at most once."""
    what = {
        "workflow": query.workflow,
        "status": query.status,
        "started_after": query.started_after,
        "started_before": query.started_before,
        # the default tenant reads as no tenant: the keys of batches made before tenants existed
        "tenant": None if query.tenant in (None, DEFAULT_TENANT) else query.tenant,
        **choices,
    }
    text = json.dumps(what, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# -- the runtime side ---------------------------------------------------------------------------


async def read_all(runtime: RedriveHost, execution_id: str, tenant: str = DEFAULT_TENANT) -> list[Envelope]:
    """Every event of an execution, read page by page; ExecutionNotFound when ``tenant`` has none."""
    await runtime.summary(execution_id, tenant=tenant)
    return await pager.read_all(runtime.log, execution_id)


async def redrive(
    runtime: RedriveHost,
    execution_id: str,
    *,
    from_step: str | None = None,
    from_failure: bool = False,
    input: Any = KEEP,
    version: int | None = None,
    dedup_key: str | None = None,
    actor: str | None = None,
    metadata: dict[str, Any] | None = None,
    tenant: str = DEFAULT_TENANT,
) -> RedriveResult:
    """Start a new execution re-running ``execution_id`` of ``tenant`` (see ``Runtime.redrive``)."""
    if from_step is not None and from_failure:
        raise RedriveInvalid("give from_step or from_failure, not both")
    events = await read_all(runtime, execution_id, tenant)
    original = fold(events)
    assert isinstance(original, ExecutionState)  # read_all found a summary, so there are events
    if not original.terminal:
        raise ExecutionRunning(f"execution {execution_id} is still running; redrive it once it has finished")
    step = from_step
    if from_failure:
        step = failed_step(events)
        if original.status != "failed" or step is None:
            raise RedriveInvalid(
                f"execution {execution_id} is {original.status} with no failed step to redrive from"
            )
    target = original.version if version is None else version
    definition = await runtime.registry.get(original.workflow, target)
    assert definition.version is not None
    graph = await runtime.engine.graph(original.workflow, definition.version)
    if step is not None and step not in graph.steps:
        raise RedriveInvalid(f"step {step!r} is not in {original.workflow} v{definition.version}")
    reuse = {} if step is None else reusable_outputs(events, step, graph)
    value = original.input if input is KEEP else input
    result = await runtime.start_execution(
        original.workflow,
        value,
        version=definition.version,
        dedup_key=None if dedup_key is None else f"redrive/{execution_id}/{dedup_key}",
        actor=actor,
        tenant=original.tenant,
        metadata={REDRIVE_OF: execution_id, "from_step": step, **(metadata or {})},
        reuse=reuse,
        debounce=False,  # a redrive runs on its own, never joined with other starts
    )
    # Both links every time (adding one is idempotent): a retry repairs a crash in between.
    now = rfc3339(runtime.clock())
    await runtime.log.add_link(Link(execution_id, result.execution_id, REDRIVEN_AS, now))
    await runtime.log.add_link(Link(result.execution_id, execution_id, REDRIVE_OF, now))
    return RedriveResult(
        result.execution_id, result.created, execution_id, step, definition.version, sorted(reuse)
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """One bulk redrive: the finished executions ``query`` (and ``failing_step``: the step named
    by their ExecutionFailed) matches, at most ``limit``, redriven from their input,
    ``from_step`` or their failure, at most ``rate_per_second`` starts a second."""

    query: ExecutionQuery
    failing_step: str | None = None
    from_failure: bool = False
    from_step: str | None = None
    rate_per_second: float = 10.0
    limit: int = 100
    batch_key: str | None = None  # None: derived from the filters and the mode
    actor: str | None = None
    reason: str | None = None  # why: recorded in each new execution's metadata

    def check(self) -> None:
        """RedriveInvalid for options that cannot work together."""
        if not self.rate_per_second > 0:
            raise RedriveInvalid("rate_per_second must be more than 0")
        if self.limit < 1:
            raise RedriveInvalid("limit must be at least 1")
        if self.from_step is not None and self.from_failure:
            raise RedriveInvalid("give from_step or from_failure, not both")

    @property
    def key(self) -> str:
        return self.batch_key or batch_key_for(
            self.query, failing_step=self.failing_step, from_failure=self.from_failure, from_step=self.from_step
        )


async def redrive_many(
    runtime: RedriveHost,
    query: ExecutionQuery,
    *,
    failing_step: str | None = None,
    from_failure: bool = False,
    from_step: str | None = None,
    dry_run: bool = True,
    rate_per_second: float = 10.0,
    limit: int = 100,
    batch_key: str | None = None,
    actor: str | None = None,
    scan_limit: int | None = None,
    reason: str | None = None,
) -> BulkRedriveResult:
    """Match finished executions and (unless ``dry_run``) redrive each, at most
    ``rate_per_second`` starts a second (see ``Runtime.redrive_many``). ``scan_limit``: look at
    no more executions than that (``truncated`` in the result when the scan stopped there)."""
    batch = Batch(query, failing_step, from_failure, from_step, rate_per_second, limit, batch_key, actor, reason)
    batch.check()
    result = BulkRedriveResult([], batch.key, dry_run)
    await match(runtime, batch, result, scan_limit)
    if not dry_run:
        await execute(runtime, batch, result)
    return result


async def match(
    runtime: RedriveHost, batch: Batch, result: BulkRedriveResult, scan_limit: int | None = None
) -> None:
    """Fill ``result.matched`` (at most ``batch.limit``), newest first; with ``scan_limit``, stop
    after looking at that many executions and set ``result.truncated``."""
    scanned = 0
    async for summary in pager.executions(runtime.log, batch.query):
        if scan_limit is not None and scanned >= scan_limit:
            result.truncated = True
            return
        scanned += 1
        if await _matches(runtime, summary, batch.failing_step, result.batch_key):
            result.matched.append(summary.execution_id)
            if len(result.matched) == batch.limit:
                return


async def execute(runtime: RedriveHost, batch: Batch, result: BulkRedriveResult) -> None:
    """Redrive every matched execution, paced, recording each outcome in ``result`` as it comes
    (so a job's progress is ``result``); cancellation stops it between two redrives."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    for index, execution_id in enumerate(list(result.matched)):
        await asyncio.sleep(max(0.0, began + index / batch.rate_per_second - loop.time()))
        try:
            one = await redrive(
                runtime,
                execution_id,
                from_step=batch.from_step,
                from_failure=batch.from_failure,
                dedup_key=f"bulk/{result.batch_key}",
                actor=batch.actor,
                metadata={"batch": result.batch_key, **({"reason": batch.reason} if batch.reason else {})},
                tenant=batch.query.tenant or DEFAULT_TENANT,
            )
        except (LookupError, ValueError) as exc:  # invalid for this one (unknown step, input, ...)
            result.errors.append({"execution_id": execution_id, "error": str(exc) or type(exc).__name__})
            continue
        (result.started if one.created else result.existing).append(one.execution_id)


class BulkRedriveJob:
    """A bulk redrive as a job's work (``orchestrator.history.jobs``): match, then redrive each.

    Its progress is the result so far plus ``progress: {total, done}`` (``total`` is null while
    matching). Re-submitting the same batch after a crash resumes it: what the batch already
    redrove comes back as ``existing``."""

    def __init__(self, runtime: RedriveHost, batch: Batch) -> None:
        batch.check()
        self.runtime = runtime
        self.batch = batch
        self.result = BulkRedriveResult([], batch.key, dry_run=False)
        self.matching = True

    async def run(self) -> None:
        await match(self.runtime, self.batch, self.result)
        self.matching = False
        await execute(self.runtime, self.batch, self.result)

    def progress(self) -> dict[str, Any]:
        r = self.result
        done = len(r.started) + len(r.existing) + len(r.errors)
        total = None if self.matching else len(r.matched)
        return {**r.to_dict(), "progress": {"total": total, "done": done}}


async def _matches(
    runtime: RedriveHost, summary: ExecutionSummary, failing_step: str | None, batch_key: str
) -> bool:
    if summary.status == "running":
        return False
    if failing_step is not None:
        last = await runtime.log.read(summary.execution_id, max(summary.last_sequence - 1, 0), 1)
        if not last or last[0].type != ev.EXECUTION_FAILED or last[0].data.get("step") != failing_step:
            return False
    # A redrive made by this same batch is not matched again: re-submitting the batch must
    # not redrive its own redrives.
    first = await runtime.log.read(summary.execution_id, 0, 1)
    metadata = first[0].data.get("metadata") if first else None
    return not (isinstance(metadata, dict) and metadata.get("batch") == batch_key)
