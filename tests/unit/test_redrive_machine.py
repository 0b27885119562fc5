"""Redrive in the pure machine: ``StartExecution.reuse`` takes recorded outputs instead of running.

A reused step emits ``StepSucceeded {"reused": true}`` on its FIRST visit only; choice,
parallel, succeed and fail steps are always re-evaluated. Histories with reused steps verify.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from orchestrator.core import events as ev
from orchestrator.core.commands import Command, CompleteStep, StartExecution
from orchestrator.core.events import Event
from orchestrator.core.machine import MAX_STEPS_ENTERED_PER_DECISION, decide_and_evolve
from orchestrator.core.replay import verify_history
from orchestrator.core.state import ExecutionState, fold
from orchestrator.core.timefmt import rfc3339
from orchestrator.history import timeline
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph
from schemas.validation import parse_definition

T0 = 1_767_225_600.0
EX = "redrive-1"


def graph_of(*steps: dict[str, Any]) -> WorkflowGraph:
    return WorkflowGraph.build(parse_definition({"name": "wf", "version": 1, "steps": list(steps)}))


def task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "task", "connector": "noop", **fields}


THREE = graph_of(
    task("a", input={"x": "input.x"}, next="b"),
    task("b", input={"a": "steps.a"}, next="c"),
    task("c", input={"b": "steps.b", "flag": "input.flag"}),
)


def start(reuse: dict[str, Any] | None = None, input: Any = None) -> StartExecution:
    return StartExecution(execution_id=EX, now=T0, workflow="wf", version=1, input=input, reuse=reuse or {})


def complete(state: ExecutionState, step: str, output: Any, now: float = T0 + 1) -> CompleteStep:
    attempt_id = state.active[step].attempt_id
    return CompleteStep(execution_id=EX, now=now, step=step, attempt_id=attempt_id, output=output)


def summary(events: list[Event]) -> list[tuple[str, str | None, bool]]:
    return [(e.type, e.data.get("step"), bool(e.data.get("reused"))) for e in events]


def test_reused_steps_are_not_run_and_the_rest_run_with_their_outputs() -> None:
    events, state = decide_and_evolve(THREE, None, start({"a": "A", "b": {"v": "B"}}, {"flag": True}))
    assert state is not None
    assert summary(events) == [
        (ev.EXECUTION_STARTED, None, False),
        (ev.STEP_SUCCEEDED, "a", True),
        (ev.STEP_SUCCEEDED, "b", True),
        (ev.STEP_SCHEDULED, "c", False),
    ]
    assert events[0].data["reuse"] == {"a": "A", "b": {"v": "B"}}
    assert events[1].data == {"step": "a", "output": "A", "reused": True}
    assert events[3].data["args"] == {"b": {"v": "B"}, "flag": True}
    assert events[3].data["visit"] == 1 and events[3].data["attempt_id"] == "c:1:1"
    assert state.reuse == {"a": "A", "b": {"v": "B"}} and state.outputs == {"a": "A", "b": {"v": "B"}}
    assert state.visits == {"a": 1, "b": 1, "c": 1}
    done, final = decide_and_evolve(THREE, state, complete(state, "c", "C"))
    assert final is not None and final.status == "succeeded" and final.output == "C"
    assert final.outputs == {"a": "A", "b": {"v": "B"}, "c": "C"}
    assert [e.type for e in done] == [ev.STEP_SUCCEEDED, ev.EXECUTION_SUCCEEDED]


def test_without_reuse_the_start_event_is_unchanged() -> None:
    events, state = decide_and_evolve(THREE, None, start())
    assert "reuse" not in events[0].data
    assert state is not None and state.reuse == {}
    assert summary(events) == [(ev.EXECUTION_STARTED, None, False), (ev.STEP_SCHEDULED, "a", False)]


def test_a_reused_step_after_a_running_one_is_taken_in_that_decision() -> None:
    events, state = decide_and_evolve(THREE, None, start({"b": "B"}))
    assert summary(events)[-1] == (ev.STEP_SCHEDULED, "a", False)
    assert state is not None
    events, state = decide_and_evolve(THREE, state, complete(state, "a", "fresh"))
    assert summary(events) == [
        (ev.STEP_SUCCEEDED, "a", False),
        (ev.STEP_SUCCEEDED, "b", True),
        (ev.STEP_SCHEDULED, "c", False),
    ]
    assert state is not None and state.outputs == {"a": "fresh", "b": "B"}


LOOP = graph_of(
    task("poll", input={"n": "input.n"}, next="check"),
    {
        "name": "check",
        "type": "choice",
        "choices": [{"when": "steps.poll.ready", "next": "done"}],
        "default": "poll",
    },
    {"name": "done", "type": "succeed", "output": "steps.poll"},
)


def test_reuse_applies_to_the_first_visit_only() -> None:
    """The loop returns to ``poll``: its second visit runs (no endless reuse)."""
    events, state = decide_and_evolve(LOOP, None, start({"poll": {"ready": False}}))
    assert summary(events) == [
        (ev.EXECUTION_STARTED, None, False),
        (ev.STEP_SUCCEEDED, "poll", True),
        (ev.CHOICE_MADE, "check", False),
        (ev.STEP_SCHEDULED, "poll", False),
    ]
    assert events[-1].data["visit"] == 2 and events[-1].data["attempt_id"] == "poll:2:1"
    assert state is not None
    events, state = decide_and_evolve(LOOP, state, complete(state, "poll", {"ready": True}))
    assert state is not None and state.status == "succeeded" and state.output == {"ready": True}
    assert not any(e.data.get("reused") for e in events)


def test_choice_parallel_succeed_and_fail_are_re_evaluated() -> None:
    graph = graph_of(
        {
            "name": "route",
            "type": "choice",
            "choices": [{"when": "input.ok", "next": "par"}],
            "default": "no",
        },
        {
            "name": "par",
            "type": "parallel",
            "branches": [{"steps": [task("x")]}, {"steps": [task("y")]}],
            "next": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.par"},
        {"name": "no", "type": "fail", "error": "nope"},
    )
    reuse = {"route": "r", "par": ["old", "old"], "done": "d", "no": "n", "x": "X"}
    events, state = decide_and_evolve(graph, None, start(reuse, {"ok": True}))
    assert summary(events) == [
        (ev.EXECUTION_STARTED, None, False),
        (ev.CHOICE_MADE, "route", False),
        (ev.PARALLEL_STARTED, "par", False),
        (ev.STEP_SUCCEEDED, "x", True),
        (ev.BRANCH_COMPLETED, "par", False),
        (ev.STEP_SCHEDULED, "y", False),
    ]
    assert state is not None
    events, state = decide_and_evolve(graph, state, complete(state, "y", "Y"))
    assert state is not None and state.output == ["X", "Y"]  # the join recomputed, not "old"
    assert summary(events)[-2:] == [(ev.STEP_SUCCEEDED, "done", False), (ev.EXECUTION_SUCCEEDED, None, False)]
    _, failed = decide_and_evolve(graph, None, start(reuse, {"ok": False}))
    assert (
        failed is not None and failed.status == "failed" and failed.error == {"type": "nope", "message": ""}
    )


def test_waits_events_and_children_are_reused_without_arming_anything() -> None:
    graph = graph_of(
        {"name": "nap", "type": "wait", "seconds": 60, "next": "approval"},
        {"name": "approval", "type": "wait_for_event", "event": "ok", "timeout_seconds": 5, "next": "kid"},
        {"name": "kid", "type": "subworkflow", "workflow": "child", "next": "last"},
        task("last", input={"by": "steps.approval.by", "kid": "steps.kid"}),
    )
    reuse = {"nap": None, "approval": {"by": "ada"}, "kid": {"k": 1}}
    events, state = decide_and_evolve(graph, None, start(reuse))
    assert [e.type for e in events] == [ev.EXECUTION_STARTED, *[ev.STEP_SUCCEEDED] * 3, ev.STEP_SCHEDULED]
    assert events[-1].data["args"] == {"by": "ada", "kid": {"k": 1}}
    assert state is not None and state.timers == {} and list(state.active) == ["last"]


def test_reused_steps_do_not_count_as_entered_steps_of_a_decision() -> None:
    count = MAX_STEPS_ENTERED_PER_DECISION + 20
    steps = [task(f"s{i}", next=f"s{i + 1}") for i in range(count)] + [task(f"s{count}")]
    graph = graph_of(*steps)
    events, state = decide_and_evolve(graph, None, start({f"s{i}": i for i in range(count)}))
    assert state is not None and list(state.active) == [f"s{count}"]
    assert sum(1 for e in events if e.data.get("reused")) == count


def stamp(graph: WorkflowGraph, commands: list[Command]) -> list[Envelope]:
    """Decide each command in turn and stamp its events as the engine does."""
    state: ExecutionState | None = None
    stamped: list[Envelope] = []
    for command in commands:
        events, state = decide_and_evolve(graph, state, command)
        stamped += [
            Envelope(
                id=f"e{len(stamped) + i}",
                type=e.type,
                subject=EX,
                sequence=len(stamped) + i,
                time=rfc3339(command.now),
                workflow="wf",
                workflowversion=1,
                data=e.data,
            )
            for i, e in enumerate(events, start=1)
        ]
    return stamped


def redriven_history() -> list[Envelope]:
    return stamp(
        THREE,
        [
            start({"a": "A", "b": "B"}, {"flag": True}),
            CompleteStep(execution_id=EX, now=T0 + 2, step="c", attempt_id="c:1:1", output="C"),
        ],
    )


def test_verify_history_accepts_a_redriven_history() -> None:
    envelopes = redriven_history()
    assert [e.type for e in envelopes] == [
        ev.EXECUTION_STARTED,
        ev.STEP_SUCCEEDED,
        ev.STEP_SUCCEEDED,
        ev.STEP_SCHEDULED,
        ev.STEP_SUCCEEDED,
        ev.EXECUTION_SUCCEEDED,
    ]
    assert verify_history(THREE, envelopes) is None
    state = fold(envelopes)
    assert state is not None and state.output == "C"


def test_verify_history_reports_a_reused_output_that_was_edited() -> None:
    envelopes = redriven_history()
    edited = dataclasses.replace(envelopes[1], data={**envelopes[1].data, "output": "other"})
    divergence = verify_history(THREE, [envelopes[0], edited, *envelopes[2:]])
    assert divergence is not None and divergence.sequence == 2
    # and a reused event dropped from the start decision is reported too
    dropped = [dataclasses.replace(e, sequence=i) for i, e in enumerate([envelopes[0], *envelopes[2:]], 1)]
    assert verify_history(THREE, dropped) is not None


def test_the_timeline_marks_reused_steps() -> None:
    built = timeline.build(redriven_history())
    assert [r.detail for r in built.rows][1] == 'reused output="A"'
    spans = {s.step: (s.kind, s.status) for s in built.spans}
    assert spans == {"a": ("reused", "reused"), "b": ("reused", "reused"), "c": ("task", "succeeded")}
    assert any("reused" in line for line in timeline.render(built))
