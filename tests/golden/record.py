"""Record the golden histories in this folder. Run once; the tests only read the output.

    PYTHONPATH=. python tests/golden/record.py

Each scenario runs the real Engine over the in-memory event log and registry with a fixed clock
and fixed envelope ids, playing the worker, the timer service and the outside world by hand, so
the output is the same on every run. Re-record only on purpose: a golden history that stops
verifying means the machine now decides differently for executions already in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import sys
import uuid
from pathlib import Path
from typing import Any

from orchestrator.backends.memory import MemoryEventLog, MemoryRegistry
from orchestrator.core.commands import (
    AdmitExecution,
    CancelExecution,
    ChildFinished,
    Command,
    CompleteStep,
    DebounceStart,
    DeliverEvent,
    ErrorInfo,
    FailStep,
    FireTimer,
    ParentRef,
    StartExecution,
)
from orchestrator.engine.engine import Engine
from schemas.envelope import Envelope
from schemas.validation import parse_definition

HERE = Path(__file__).parent
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Recorder:
    """An engine with memory backends, a hand-driven clock and counted event and command ids."""

    def __init__(self) -> None:
        self.now = T0
        self._ids = 0
        self._commands = 0
        self.log = MemoryEventLog()
        self.registry = MemoryRegistry()
        self.engine = Engine(self.log, self.registry, clock=lambda: self.now, new_id=self._new_id)

    def _new_id(self) -> str:
        self._ids += 1
        return str(uuid.UUID(int=self._ids))

    def tick(self, seconds: float) -> None:
        self.now = round(self.now + seconds, 6)

    def until(self, due: float) -> None:
        """Move the clock just past ``due``, to a whole microsecond as a real timer store would."""
        self.now = max(self.now, math.ceil(due * 1e6) / 1e6 + 0.001)

    async def register(self, definition: dict[str, Any]) -> int:
        stored = await self.registry.register(parse_definition(definition))
        assert stored.version is not None
        return stored.version

    async def send(self, command: Command, *, stale: bool = False) -> None:
        self._commands += 1  # as the command codec does: one id per command, kept on redelivery
        command = dataclasses.replace(command, command_id=f"cmd-{self._commands:04d}")
        committed = await self.engine.handle(command)
        assert (committed is None) == stale, f"{command} stale={stale}"

    async def events(self, execution_id: str) -> list[Envelope]:
        return await self.log.read(execution_id)

    async def last(self, execution_id: str, type_: str, step: str | None = None) -> dict[str, Any]:
        for event in reversed(await self.events(execution_id)):
            if event.type == type_ and (step is None or event.data.get("step") == step):
                data: dict[str, Any] = event.data
                return data
        raise LookupError(f"no {type_} for {step}")

    # command shorthands -------------------------------------------------------------------

    def base(self, execution_id: str) -> dict[str, Any]:
        return {"execution_id": execution_id, "now": self.now}

    async def complete(self, execution_id: str, step: str, output: Any, **kw: Any) -> None:
        scheduled = await self.last(execution_id, "StepScheduled", step)
        attempt_id = kw.pop("attempt_id", scheduled["attempt_id"])
        command = CompleteStep(
            **self.base(execution_id), step=step, attempt_id=attempt_id, output=output
        )
        await self.send(command, **kw)

    async def fail(self, execution_id: str, step: str, error: ErrorInfo) -> None:
        scheduled = await self.last(execution_id, "StepScheduled", step)
        attempt_id = scheduled["attempt_id"]
        await self.send(
            FailStep(**self.base(execution_id), step=step, attempt_id=attempt_id, error=error)
        )

    async def fire(self, execution_id: str, timer_id: str, due: float) -> None:
        self.until(due)
        await self.send(FireTimer(**self.base(execution_id), timer_id=timer_id))


# -- definitions ------------------------------------------------------------------------------

ORDER: dict[str, Any] = {
    "name": "order",
    "description": "Validate, reserve stock and charge in parallel, then ship.",
    "input_schema": {
        "type": "object",
        "required": ["order_id", "amount"],
        "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    },
    "steps": [
        {
            "name": "validate",
            "type": "task",
            "connector": "python",
            "config": {"function": "shop.validate"},
            "input": {"order": "input"},
            "next": "fulfil",
        },
        {
            "name": "fulfil",
            "type": "parallel",
            "next": "ship",
            "on_error": "cancel_order",
            "branches": [
                {
                    "name": "stock",
                    "steps": [
                        {
                            "name": "reserve",
                            "type": "task",
                            "connector": "http",
                            "config": {"url": "https://stock.example/reserve", "method": "POST"},
                            "input": {"order_id": "input.order_id"},
                            "output": "result.reservation",
                            "retry": {
                                "max_attempts": 3,
                                "jitter": 0.5,
                                "retry_on": ["http.5*", "timeout"],
                                "backoff": {
                                    "initial_seconds": 2,
                                    "multiplier": 2,
                                    "max_seconds": 30,
                                },
                            },
                        },
                    ],
                },
                {
                    "name": "payment",
                    "steps": [
                        {
                            "name": "charge",
                            "type": "task",
                            "connector": "http",
                            "config": {"url": "https://pay.example/charge", "method": "POST"},
                            "input": {"order_id": "input.order_id", "amount": "input.amount"},
                        },
                    ],
                },
            ],
        },
        {
            "name": "ship",
            "type": "task",
            "connector": "http",
            "timeout_seconds": 30,
            "config": {"url": "https://ship.example/labels"},
            "input": {"order_id": "input.order_id", "reservation": "steps.fulfil[0]"},
            "retry": {"max_attempts": 2, "backoff": {"initial_seconds": 5}},
            "next": "done",
        },
        {
            "name": "done",
            "type": "succeed",
            "output": "{order: input.order_id, reservation: steps.fulfil[0], "
            "tracking: steps.ship.tracking}",
        },
        {
            "name": "cancel_order",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://shop.example/cancel"},
            "input": {"order_id": "input.order_id"},
            "next": "order_failed",
        },
        {
            "name": "order_failed",
            "type": "fail",
            "error": "OrderFailed",
            "cause": "steps.fulfil.error.message",
        },
    ],
}

# The same workflow after an edit that ships before fulfilling: histories recorded against
# ORDER must no longer verify, from the decision after "validate" on.
ORDER_REORDERED: dict[str, Any] = {
    **ORDER,
    "description": "ORDER edited: ship moved before the parallel fulfil step.",
    "steps": [
        {**ORDER["steps"][0], "next": "ship"},
        {**ORDER["steps"][1], "next": "done"},
        {**ORDER["steps"][2], "next": "fulfil"},
        *ORDER["steps"][3:],
    ],
}

APPROVAL: dict[str, Any] = {
    "name": "approval",
    "description": "Ask for approval; escalate to a manager when nobody answers within an hour.",
    "output": "{request: input.request_id, decision: steps.approved}",
    "steps": [
        {
            "name": "request",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://chat.example/ask"},
            "input": {"request_id": "input.request_id", "amount": "input.amount"},
            "next": "await_approval",
        },
        {
            "name": "await_approval",
            "type": "wait_for_event",
            "event": "approval.decided",
            "correlation_key": "input.request_id",
            "timeout_seconds": 3600,
            "on_timeout": "escalate",
            "next": "decide",
        },
        {
            "name": "escalate",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://chat.example/escalate"},
            "input": {"request_id": "input.request_id"},
            "next": "await_manager",
        },
        {
            "name": "await_manager",
            "type": "wait_for_event",
            "event": "manager.decided",
            "next": "decide",
        },
        {
            "name": "decide",
            "type": "choice",
            "default": "rejected",
            "choices": [
                {
                    "when": "steps.await_approval.approved || steps.await_manager.approved",
                    "next": "approved",
                },
            ],
        },
        {"name": "approved", "type": "succeed", "output": "{by: steps.await_manager.by}"},
        {
            "name": "rejected",
            "type": "fail",
            "error": "Rejected",
            "cause": "'the request was declined'",
        },
    ],
}

POLL: dict[str, Any] = {
    "name": "poll",
    "description": "Poll a job every 15 seconds until it is done: a choice loop with a counter.",
    "steps": [
        {
            "name": "check",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://jobs.example/status"},
            "input": {"job": "input.job_id"},
            "next": "evaluate",
        },
        {
            "name": "evaluate",
            "type": "choice",
            "default": "pause",
            "choices": [
                {"when": "steps.check.status == 'done'", "next": "finish"},
                {"when": "steps.check.status == 'failed'", "next": "give_up"},
            ],
        },
        {"name": "pause", "type": "wait", "seconds": 15, "next": "check"},
        {
            "name": "finish",
            "type": "succeed",
            "output": "{job: input.job_id, rounds: steps.check.round}",
        },
        {"name": "give_up", "type": "fail", "error": "JobFailed", "cause": "steps.check.reason"},
    ],
}

PACKING: dict[str, Any] = {
    "name": "packing",
    "description": "The child workflow: pack the items of one order.",
    "steps": [
        {
            "name": "pack",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://warehouse.example/pack"},
            "input": {"items": "input.items"},
            "next": "packed",
        },
        {
            "name": "packed",
            "type": "succeed",
            "output": "{order: input.order, box: steps.pack.box}",
        },
    ],
}

FULFILMENT: dict[str, Any] = {
    "name": "fulfilment",
    "description": "The parent workflow: prepare, run the packing child, then notify.",
    "steps": [
        {
            "name": "prepare",
            "type": "task",
            "connector": "python",
            "config": {"function": "shop.prepare"},
            "input": {"order": "input.order_id"},
            "next": "run_child",
        },
        {
            "name": "run_child",
            "type": "subworkflow",
            "workflow": "packing",
            "version": 1,
            "input": {"order": "input.order_id", "items": "steps.prepare.items"},
            "next": "notify",
            "on_error": "packing_failed",
        },
        {
            "name": "notify",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://mail.example/send"},
            "input": {"box": "steps.run_child.box"},
            "next": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.run_child"},
        {
            "name": "packing_failed",
            "type": "fail",
            "error": "PackingFailed",
            "cause": "steps.run_child.error.message",
        },
    ],
}

HOLD: dict[str, Any] = {
    "name": "hold",
    "description": "Wait until a release time taken from the input; cancelled while waiting.",
    "steps": [
        {"name": "hold", "type": "wait", "until": "input.release_at", "next": "release"},
        {
            "name": "release",
            "type": "task",
            "connector": "http",
            "config": {"url": "https://shop.example/release"},
        },
    ],
}


# -- scenarios --------------------------------------------------------------------------------


async def order(r: Recorder) -> str:
    await r.register(ORDER)
    ex = "order-A-1001"
    await r.send(
        StartExecution(
            **r.base(ex),
            workflow="order",
            version=1,
            input={"order_id": "A-1001", "amount": 42.5},
            dedup_key="A-1001",
        )
    )
    r.tick(0.5)
    await r.complete(ex, "validate", {"ok": True})
    r.tick(1.25)
    await r.fail(ex, "reserve", ErrorInfo("http.503", "Service Unavailable", True))
    r.tick(0.25)
    await r.complete(ex, "charge", {"charge_id": "ch_1"})
    r.tick(0.1)
    await r.complete(ex, "charge", {"charge_id": "ch_1"}, stale=True)  # a redelivered answer
    retry = (await r.last(ex, "StepFailed", "reserve"))["retry"]
    await r.fire(ex, retry["timer_id"], retry["due"])
    r.tick(0.75)
    await r.complete(ex, "reserve", {"reservation": "R-9"})
    scheduled = await r.last(ex, "StepScheduled", "ship")
    await r.fire(ex, f"{scheduled['attempt_id']}:timeout", scheduled["deadline"])
    retry = (await r.last(ex, "StepFailed", "ship"))["retry"]
    await r.fire(ex, retry["timer_id"], retry["due"])
    r.tick(0.5)
    first = scheduled["attempt_id"]  # the timed-out attempt answers late: ignored
    await r.complete(ex, "ship", {"tracking": "late"}, attempt_id=first, stale=True)
    await r.complete(ex, "ship", {"tracking": "TRK-77"})
    return ex


async def approval(r: Recorder) -> str:
    await r.register(APPROVAL)
    ex = "approval-R-7"
    await r.send(
        StartExecution(
            **r.base(ex),
            workflow="approval",
            version=1,
            actor="alice",
            input={"request_id": "R-7", "amount": 1200},
        )
    )
    r.tick(2)
    await r.complete(ex, "request", {"message_id": "m-1"})
    awaited = await r.last(ex, "EventAwaited", "await_approval")
    await r.fire(ex, awaited["timer_id"], awaited["due"])
    r.tick(5)
    key = "R-7"  # a decision after the timeout: nobody waits for it any more
    await r.send(
        DeliverEvent(
            **r.base(ex), name="approval.decided", correlation_key=key, payload={"approved": True}
        ),
        stale=True,
    )
    r.tick(60)  # the manager answers before the escalation task is even done: buffered
    await r.send(
        DeliverEvent(
            **r.base(ex),
            name="manager.decided",
            actor="bob",
            payload={"approved": True, "by": "bob"},
        )
    )
    r.tick(1)
    await r.complete(ex, "escalate", {"message_id": "m-2"})
    return ex


async def poll(r: Recorder) -> str:
    await r.register(POLL)
    ex = "poll-J-3"
    await r.send(StartExecution(**r.base(ex), workflow="poll", version=1, input={"job_id": "J-3"}))
    for round_, status in enumerate(["queued", "running", "done"], start=1):
        r.tick(0.5)
        await r.complete(ex, "check", {"status": status, "round": round_})
        if status != "done":
            timer = await r.last(ex, "TimerScheduled", "pause")
            await r.fire(ex, timer["timer_id"], timer["due"])
    return ex


async def subworkflow(r: Recorder) -> tuple[str, str]:
    await r.register(PACKING)
    await r.register(FULFILMENT)
    parent = "fulfilment-A-2002"
    await r.send(
        StartExecution(
            **r.base(parent), workflow="fulfilment", version=1, input={"order_id": "A-2002"}
        )
    )
    r.tick(0.5)
    await r.complete(parent, "prepare", {"items": ["mug", "tea"]})
    started = await r.last(parent, "ChildStarted", "run_child")
    child = started["child_id"]
    r.tick(0.01)  # what the runtime's effects do after the commit: start the child
    await r.send(
        StartExecution(
            **r.base(child),
            workflow="packing",
            version=1,
            input=started["input"],
            parent=ParentRef(parent, "run_child"),
        )
    )
    r.tick(3)
    await r.complete(child, "pack", {"box": "BX-5"})
    finished = (await r.events(child))[-1]
    r.tick(0.01)
    await r.send(
        ChildFinished(
            **r.base(parent), child_id=child, status="succeeded", output=finished.data["output"]
        )
    )
    r.tick(1)
    await r.complete(parent, "notify", {"sent": True})
    return parent, child


async def hold(r: Recorder) -> str:
    await r.register(HOLD)
    ex = "hold-H-1"
    await r.send(
        StartExecution(
            **r.base(ex), workflow="hold", version=1, input={"release_at": "2026-01-02T09:30:00"}
        )
    )
    r.tick(3600)
    await r.send(CancelExecution(**r.base(ex), actor="carol", reason="customer request"))
    return ex


LIMITED: dict[str, Any] = {
    "name": "limited",
    "description": "One sync per customer at once; the slot is given back while waiting for approval.",
    "concurrency": [
        {"key": "input.customer", "limit": 1, "release_while_waiting": True},
        {"limit": 20, "on_limit": "fail"},
    ],
    "priority": "input.tier",
    "steps": [
        {"name": "approve", "type": "wait_for_event", "event": "approved", "next": "sync"},
        {"name": "sync", "type": "task", "connector": "http", "config": {"url": "https://crm.example/sync"}},
    ],
}


async def limited(r: Recorder) -> str:
    await r.register(LIMITED)
    ex = "limited-L-1"
    await r.send(StartExecution(**r.base(ex), workflow="limited", version=1, input={"customer": "acme", "tier": 2}))
    r.tick(5)
    await r.send(AdmitExecution(**r.base(ex), actor="admission"))
    await r.send(AdmitExecution(**r.base(ex), actor="admission"), stale=True)  # sent twice: once
    r.tick(60)
    await r.send(DeliverEvent(**r.base(ex), name="approved", payload={"by": "dana"}))
    r.tick(2)
    await r.send(AdmitExecution(**r.base(ex), actor="admission"))
    r.tick(1)
    await r.complete(ex, "sync", {"synced": 3})
    return ex


DEBOUNCED: dict[str, Any] = {
    "name": "debounced",
    "description": "Reindex a customer once per burst of changes, with the last change's input.",
    "debounce": {"key": "input.customer", "period": 30},
    "steps": [
        {"name": "reindex", "type": "task", "connector": "http", "config": {"url": "https://search.example/reindex"}, "input": {"rev": "input.rev"}},
    ],
}


async def debounced(r: Recorder) -> str:
    await r.register(DEBOUNCED)
    ex = "debounced-D-1"
    start = StartExecution(
        **r.base(ex), workflow="debounced", version=1, input={"customer": "acme", "rev": 1},
        not_before=r.now + 30, debounce_key='"acme"',
    )  # fmt: skip
    await r.send(start)
    for rev in (2, 3):
        r.tick(10)
        await r.send(DebounceStart(**r.base(ex), actor="erin", input={"customer": "acme", "rev": rev}, due=r.now + 30))
    r.tick(20)
    await r.send(FireTimer(**r.base(ex), timer_id="reindex:0:debounce:0"), stale=True)  # pushed back: nothing
    r.tick(10)
    await r.send(FireTimer(**r.base(ex), timer_id="reindex:0:debounce:2"))
    r.tick(1)
    await r.complete(ex, "reindex", {"indexed": 3})
    return ex


# -- output -----------------------------------------------------------------------------------


def golden(
    description: str,
    definition: dict[str, Any],
    events: list[Envelope],
    divergence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    final = events[-1].type
    return {
        "description": description,
        "definition": {**definition, "version": 1},
        "expect": {"final_event": final, "events": len(events), "divergence": divergence},
        "events": [event.to_cloudevent() for event in events],
    }


def divergence_of_reordered(events: list[Envelope]) -> dict[str, Any]:
    """Where ORDER_REORDERED parts from a history recorded against ORDER, found by hand:
    the decision after 'validate' succeeded started the parallel; the edit schedules 'ship'."""
    started = next(e for e in events if e.type == "ParallelStarted")
    return {
        "sequence": started.sequence,
        "recorded_type": "ParallelStarted",
        "expected_type": "StepScheduled",
        "expected_step": "ship",
    }


async def record() -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    r = Recorder()
    events = await r.events(await order(r))
    files["order_parallel_retry"] = golden(
        "Parallel reserve+charge; reserve retried after an HTTP 503 (jittered backoff), a "
        "redelivered charge answer ignored, ship timed out and retried, a late answer ignored.",
        ORDER,
        events,
    )
    files["order_reordered_divergent"] = golden(
        "DIVERGENT on purpose: the order history above, stored with the edited definition "
        "(ship before fulfil). verify_history must report the first difference.",
        ORDER_REORDERED,
        events,
        divergence_of_reordered(events),
    )
    r = Recorder()
    files["approval_event_timeout"] = golden(
        "wait_for_event with a correlation key times out -> on_timeout escalation; a late "
        "correlated event is ignored; a signal that arrives before its wait is buffered and "
        "consumed.",
        APPROVAL,
        await r.events(await approval(r)),
    )
    r = Recorder()
    files["poll_choice_loop"] = golden(
        "A choice loop: check -> evaluate -> pause (wait 15 s) -> check, three rounds.",
        POLL,
        await r.events(await poll(r)),
    )
    r = Recorder()
    parent, child = await subworkflow(r)
    files["subworkflow_parent"] = golden(
        "A parent that starts a child workflow (deterministic child id) and continues with its "
        "output.",
        FULFILMENT,
        await r.events(parent),
    )
    files["subworkflow_child"] = golden(
        "The child execution of subworkflow_parent, which names its parent in ExecutionStarted.",
        PACKING,
        await r.events(child),
    )
    r = Recorder()
    files["hold_cancelled"] = golden(
        "A wait with 'until' (a naive ISO time, read as UTC), cancelled while waiting.",
        HOLD,
        await r.events(await hold(r)),
    )
    r = Recorder()
    files["limited_release_while_waiting"] = golden(
        "Concurrency limits: queued at the start, admitted (a second grant ignored), the "
        "customer's slot given back while waiting for approval, queued again and admitted "
        "before the next step.",
        LIMITED,
        await r.events(await limited(r)),
    )
    r = Recorder()
    files["debounced_last_input"] = golden(
        "Debounce: a start, two later starts with the same key (each replaces the input and "
        "pushes the quiet period back), a stale fire of the first timer ignored, then one run "
        "with the last input.",
        DEBOUNCED,
        await r.events(await debounced(r)),
    )
    return files


def main() -> int:
    for name, content in asyncio.run(record()).items():
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path}: {len(content['events'])} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
