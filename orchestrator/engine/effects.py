"""What follows a commit: the projections and messages derived from newly durable events.

Tasks are dispatched, timers armed or cancelled, event waits indexed, children started or
cancelled, parents told, waiters woken. ``resume`` re-derives the same from a state after a
restart, which is how a crashed process picks up its running executions.

Each of those effects is attempted on its own. With ``redo`` set (embedded mode), one that fails
is retried in the background and the others still run: the commit stands, so the command that
caused it is not reported as failed. Without it (Kafka), the first failure raises, and the
redelivered command re-derives the effects.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.core import events as ev
from orchestrator.core.commands import (
    CancelExecution,
    ChildFinished,
    Command,
    FireTimer,
    ParentRef,
    StartExecution,
)
from orchestrator.core.debounce import debounce_wait_keys
from orchestrator.core.machine import CommandRejected, idempotency_key
from orchestrator.core.state import ExecutionState
from orchestrator.engine.engine import Committed, Engine
from orchestrator.engine.retrying import Redo
from orchestrator.ports import (
    BackendUnavailable,
    Registry,
    StepTask,
    Timers,
    Transport,
    UnknownWorkflow,
    WaitIndex,
    WaitKey,
)
from schemas.definition import SubworkflowStep, TaskStep
from schemas.secrets import secret_paths

log = logging.getLogger(__name__)


def parent_actor(execution_id: str) -> str:
    """The actor of what a parent execution does to its children (start, cancel)."""
    return f"parent:{execution_id}"


def wait_keys(state: ExecutionState | None) -> set[WaitKey]:
    if state is None or state.terminal:
        return set()
    keys = {(a.event or "", a.correlation_key) for a in state.active.values() if a.kind == "wait_for_event"}
    return keys | debounce_wait_keys(state)


def child_ids(state: ExecutionState | None) -> set[str]:
    if state is None:
        return set()
    return {a.child_id for a in state.active.values() if a.kind == "subworkflow" and a.child_id}


class Effects:
    """Turns commits into messages; registered as the engine's observer."""

    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        transport: Transport,
        timers: Timers,
        waits: WaitIndex,
        clock: Callable[[], float],
        *,
        others_commit: bool = False,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.transport = transport
        self.timers = timers
        self.clock = clock
        self.waits = waits
        self.others_commit = others_commit  # other processes append too: poll the log to see it
        self.redo: Redo | None = None  # set by the runtime in embedded mode (module docstring)
        self._finished: dict[str, list[asyncio.Future[ExecutionState]]] = {}

    async def on_committed(self, c: Committed) -> None:
        after = c.after
        at = (after.execution_id, after.sequence)
        if not c.events:  # a redelivery or a resume request: effects may have been lost
            if after.terminal:
                await self._attempt(("finished", *at), self._finished_execution, after)
            else:
                await self._attempt(("resume", *at), self.resume, after)
            return
        for event in c.events:
            if event.type == ev.STEP_SCHEDULED:
                task = task_from_event(after, event.data, scheduled_at=c.command.now)
                await self._attempt(("dispatch", *at, task.attempt_id), self.transport.dispatch, task)
        await self._attempt(("timers", *at), self._sync_timers, c.before, after)
        await self._attempt(("waits", *at), self._sync_waits, c.before, after)
        children_before, children_after = child_ids(c.before), child_ids(after)
        for child_id in children_after - children_before:
            await self._attempt(("child", *at, child_id), self._start_child, after, child_id)
        for child_id in children_before - children_after:
            finished = getattr(c.command, "child_id", None) == child_id
            if not finished:
                cancel = CancelExecution(
                    execution_id=child_id,
                    now=self.clock(),
                    actor=parent_actor(after.execution_id),
                    reason="parent moved on",
                )
                await self._attempt(("cancel", *at, child_id), self.submit, cancel)
        if after.terminal:
            await self._attempt(("finished", *at), self._finished_execution, after)

    async def _attempt(self, key: tuple[Any, ...], effect: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one effect; a failure goes to ``redo`` (or raises without it)."""
        if self.redo is None:
            await effect(*args)
            return
        try:
            await effect(*args)
        except Exception as exc:
            what = f"effect {key[0]} of {key[1]} at {key[2]}"
            self.redo.add(("effect", *key), functools.partial(effect, *args), what, exc)

    async def resume(self, state: ExecutionState) -> None:
        """Re-derive the effects of a running execution after a restart (at-least-once)."""
        await self._sync_timers(None, state)
        await self._sync_waits(None, state)
        graph = await self.engine.graph(state.workflow, state.version)
        for active in state.active.values():
            step = graph.steps.get(active.step)
            if active.kind == "task" and active.phase == "running" and isinstance(step, TaskStep):
                await self.transport.dispatch(
                    task_from_active(state, step, active.attempt, active.attempt_id, active.args)
                )
            elif active.kind == "subworkflow" and active.child_id:
                child = await self.engine.load(active.child_id)
                if child is None:
                    await self._start_child(state, active.child_id)
                elif child.terminal:
                    await self._tell_parent(child)

    async def wait_finished(self, execution_id: str, timeout: float | None = None) -> ExecutionState:
        """The terminal state of an execution, waiting for it if needed.

        Woken at once by commits in this process; polls the log (with backoff) for executions
        that another process owns, and while the log fails (it may have finished meanwhile).
        """
        future: asyncio.Future[ExecutionState] = asyncio.get_running_loop().create_future()
        self._finished.setdefault(execution_id, []).append(future)
        try:
            async with asyncio.timeout(timeout):
                delay = 0.05
                while True:
                    poll = self.others_commit
                    try:
                        summary = await self.engine.log.summary(execution_id)
                        if summary is not None and summary.status != "running":
                            if (final := self.engine.cached_terminal(execution_id)) is not None:
                                return final  # folded here from the committed events: no re-read
                            self.engine.forget(execution_id)
                            state = await self.engine.load(execution_id)
                            assert state is not None
                            return state
                    except (BackendUnavailable, OSError) as exc:  # an outage: wait until the timeout
                        log.debug("waiting for %s: the event log failed: %r", execution_id, exc)
                        poll = True
                    done, _ = await asyncio.wait([future], timeout=delay if poll else None)
                    if done:
                        return future.result()
                    delay = min(delay * 2, 1.0)
        finally:
            waiters = self._finished.get(execution_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._finished.pop(execution_id, None)

    async def submit(self, command: Command) -> None:
        """Send an internal command; a rejection (already done, already exists) is expected."""
        try:
            await self.transport.submit(command)
        except CommandRejected as exc:
            log.debug("internal command not applied: %s", exc)

    async def on_timer(self, execution_id: str, timer_id: str) -> None:
        """Fire a timer. Timers fire again until cancelled, and the effects cancel one once its
        ``TimerFired`` is applied; a failed fire is therefore only logged (the timer fires again).
        In one process (the engine handled the command here), a fire that found the timer no
        longer armed cancels it: its cancel was lost to an append of unknown outcome."""
        try:
            await self.submit(FireTimer(execution_id=execution_id, now=self.clock(), timer_id=timer_id))
            if not self.others_commit:
                state = await self.engine.load(execution_id)
                if state is None or timer_id not in state.timers:
                    await self.timers.cancel(execution_id, timer_id)
        except Exception as exc:
            log.warning("timer %s of %s: firing failed (%r); it fires again", timer_id, execution_id, exc)

    async def _sync_waits(self, before: ExecutionState | None, after: ExecutionState) -> None:
        old, new = wait_keys(before), wait_keys(after)
        if old != new:
            await self.waits.update(after.execution_id, old - new, new - old)

    async def _sync_timers(self, before: ExecutionState | None, after: ExecutionState) -> None:
        old = before.timers if before is not None else {}
        for timer_id in old.keys() - after.timers.keys():
            await self.timers.cancel(after.execution_id, timer_id)
        for timer_id, timer in after.timers.items():
            if timer_id not in old:
                await self.timers.schedule(after.execution_id, timer_id, timer.due)

    async def _start_child(self, parent: ExecutionState, child_id: str) -> None:
        active = next(a for a in parent.active.values() if a.child_id == child_id)
        graph = await self.engine.graph(parent.workflow, parent.version)
        step = graph.step(active.step)
        assert isinstance(step, SubworkflowStep)
        try:
            version = step.version or (await self.registry.get(step.workflow)).version or 1
        except UnknownWorkflow as exc:
            error = {"type": "workflow.unknown", "message": str(exc)}
            await self.submit(
                ChildFinished(
                    execution_id=parent.execution_id,
                    now=self.clock(),
                    child_id=child_id,
                    status="failed",
                    error=error,
                )
            )
            return
        await self.submit(
            StartExecution(
                execution_id=child_id,
                now=self.clock(),
                actor=parent_actor(parent.execution_id),
                workflow=step.workflow,
                version=version,
                input=active.args,
                tenant=parent.tenant,
                parent=ParentRef(parent.execution_id, active.step),
            )
        )

    async def _finished_execution(self, state: ExecutionState) -> None:
        for future in self._finished.get(state.execution_id, []):
            if not future.done():
                future.set_result(state)
        await self._tell_parent(state)

    async def _tell_parent(self, child: ExecutionState) -> None:
        if child.parent is None:
            return
        await self.submit(
            ChildFinished(
                execution_id=child.parent["execution_id"],
                now=self.clock(),
                child_id=child.execution_id,
                status=child.status,
                output=child.output,
                error=child.error,
            )
        )


def task_from_event(state: ExecutionState, data: dict[str, Any], *, scheduled_at: float | None = None) -> StepTask:
    return StepTask(
        execution_id=state.execution_id,
        workflow=state.workflow,
        step=data["step"],
        attempt=data["attempt"],
        attempt_id=data["attempt_id"],
        connector=data["connector"],
        config=data["config"],
        args=data["args"],
        idempotency_key=data["idempotency_key"],
        timeout_seconds=data.get("timeout_seconds"),
        tenant=state.tenant,
        actor=state.started_by,
        scheduled_at=scheduled_at,
        traceparent=state.traceparent,
        secret_args=data.get("secret_args", []),
    )


def task_from_active(
    state: ExecutionState, step: TaskStep, attempt: int, attempt_id: str, args: Any
) -> StepTask:
    visit = state.visits.get(step.name, 1)
    return StepTask(
        execution_id=state.execution_id,
        workflow=state.workflow,
        step=step.name,
        attempt=attempt,
        attempt_id=attempt_id,
        connector=step.connector,
        config=step.config,
        args=args,
        idempotency_key=idempotency_key(state.execution_id, step.name, visit),
        timeout_seconds=step.timeout_seconds,
        tenant=state.tenant,
        actor=state.started_by,
        traceparent=state.traceparent,
        secret_args=[list(path) for path in secret_paths(step.input)],
    )
