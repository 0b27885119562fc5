"""Generated histories with known answers for the analytics tests and the benchmark.

``history`` writes the events one execution records when its steps run one after the other with
the queue waits, run times, retried errors and final failure given, at times chosen by the test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.timefmt import rfc3339
from schemas.envelope import Envelope


@dataclass(frozen=True)
class StepPlan:
    name: str
    queue: float = 0.0  # scheduled -> the worker began, per attempt
    run: float = 1.0  # began -> answered, per attempt
    retried: tuple[str, ...] = ()  # error types of failed attempts that were retried
    fails: str | None = None  # the error type of a final failure (the execution fails here)
    retry_delay: float = 0.0


@dataclass
class Recorder:
    execution_id: str
    workflow: str
    version: int = 1
    tenant: str = "default"
    events: list[Envelope] = field(default_factory=list)

    def add(self, kind: str, at: float, data: dict[str, Any]) -> None:
        sequence = len(self.events) + 1
        self.events.append(
            Envelope(
                id=f"{self.execution_id}/{sequence}",
                type=kind,
                subject=self.execution_id,
                sequence=sequence,
                time=rfc3339(at),
                workflow=self.workflow,
                workflowversion=self.version,
                data=data,
                tenant=self.tenant,
            )
        )


def used(plan: StepPlan) -> dict[str, Any]:
    """What an attempt used, as the worker records it; CPU is half the run time, memory 64 MiB."""
    return {"wall_seconds": plan.run, "cpu_seconds": plan.run / 2, "peak_memory_bytes": 64 * 2**20,
            "bytes_in": 10, "bytes_out": 20}  # fmt: skip


def history(
    execution_id: str,
    workflow: str,
    start: float,
    steps: list[StepPlan],
    *,
    version: int = 1,
    tenant: str = "default",
    inputs: Any = None,
) -> list[Envelope]:
    """The events of one execution running ``steps`` in order from ``start``."""
    r = Recorder(execution_id, workflow, version, tenant)
    r.add("ExecutionStarted", start, {"execution_id": execution_id, "workflow": workflow,
                                      "version": version, "tenant": tenant, "input": inputs})  # fmt: skip
    t = start
    for plan in steps:
        errors: list[str | None] = [*plan.retried, plan.fails] if plan.fails else [*plan.retried, None]
        for attempt, error in enumerate(errors, start=1):
            attempt_id = f"{execution_id}:{plan.name}:{attempt}"
            r.add("StepScheduled", t, {"step": plan.name, "visit": 1, "attempt": attempt,
                                      "attempt_id": attempt_id, "connector": "python"})  # fmt: skip
            began = t + plan.queue
            t = began + plan.run
            if error is None:
                r.add("StepSucceeded", t, {"step": plan.name, "attempt_id": attempt_id,
                                          "output": {"ok": True}, "resources": used(plan)})  # fmt: skip
                continue
            data: dict[str, Any] = {"step": plan.name, "attempt_id": attempt_id, "attempt": attempt,
                                    "error": {"type": error, "message": "", "retryable": True},
                                    "resources": used(plan)}  # fmt: skip
            if error is plan.fails and attempt == len(errors):
                r.add("StepFailed", t, {**data, "abandoned": []})
                r.add("ExecutionFailed", t, {"error": data["error"], "step": plan.name})
                return r.events
            r.add("StepFailed", t, {**data, "retry": {"timer_id": f"{attempt_id}:retry", "due": t + plan.retry_delay}})
            t += plan.retry_delay
    r.add("ExecutionSucceeded", t, {"output": {"done": True}})
    return r.events
