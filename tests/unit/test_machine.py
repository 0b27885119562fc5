"""The pure machine, step kind by step kind: hand-made commands into decide, events out.

Every command goes through ``Run.send``, which also checks two invariants on the way: decide
never mutates the state it is given, and the state decide_and_evolve returns is the fold of
the events it returns.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.core import events as ev
from orchestrator.core.commands import (
    CancelExecution,
    ChildFinished,
    Command,
    CompleteStep,
    DeliverEvent,
    ErrorInfo,
    FailStep,
    FireTimer,
    ParentRef,
    StartExecution,
)
from orchestrator.core.events import Event
from orchestrator.core.machine import (
    CHILD_NAMESPACE,
    CommandRejected,
    ExecutionExists,
    backoff_delay,
    decide,
    decide_and_evolve,
    should_retry,
)
from orchestrator.core.state import ExecutionState, fold
from schemas.definition import Backoff, RetryPolicy, WorkflowDefinition
from schemas.graph import WorkflowGraph
from schemas.validation import parse_definition

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EX = "ex-1"


def graph_of(*steps: dict[str, Any], **top: Any) -> WorkflowGraph:
    return WorkflowGraph.build(
        parse_definition({"name": "wf", "version": 1, "steps": list(steps), **top})
    )


def unchecked_graph_of(*steps: dict[str, Any]) -> WorkflowGraph:
    """A graph validation refuses (e.g. a loop that never waits, refused since it was allowed):
    the machine's own guard must still stop one registered before."""
    return WorkflowGraph.build(WorkflowDefinition.model_validate({"name": "wf", "version": 1, "steps": list(steps)}))


def task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "task", "connector": "noop", **fields}


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def only(events: list[Event], type_: str, step: str | None = None) -> dict[str, Any]:
    found = [
        e.data for e in events if e.type == type_ and (step is None or e.data.get("step") == step)
    ]
    assert len(found) == 1, f"{type_} {step}: {found}"
    return found[0]


class Run:
    """One execution driven by hand."""

    def __init__(
        self, graph: WorkflowGraph, input: Any = None, *, now: float = T0, execution_id: str = EX
    ) -> None:
        self.graph = graph
        self.execution_id = execution_id
        self.state: ExecutionState | None = None
        self.history: list[Event] = []
        self.started = self.send(
            StartExecution(
                execution_id=execution_id, now=now, workflow="wf", version=1, input=input
            )
        )

    @property
    def s(self) -> ExecutionState:
        assert self.state is not None
        return self.state

    def send(self, command: Command) -> list[Event]:
        before = copy.deepcopy(self.state)
        events, after = decide_and_evolve(self.graph, self.state, command)
        assert self.state == before, "decide mutated the state it was given"
        if events:
            assert after == fold(events, self.state)
            self.state = after
            self.history += events
        else:
            assert after is self.state
        return events

    def base(self, now: float) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "now": now}

    def attempt_id(self, step: str) -> str:
        return self.s.active[step].attempt_id

    def complete(
        self, step: str, output: Any = None, *, now: float = T0, attempt_id: str | None = None
    ) -> list[Event]:
        attempt = attempt_id or self.attempt_id(step)
        return self.send(
            CompleteStep(**self.base(now), step=step, attempt_id=attempt, output=output)
        )

    def fail(
        self,
        step: str,
        error: str = "boom",
        *,
        retryable: bool = True,
        now: float = T0,
        attempt_id: str | None = None,
    ) -> list[Event]:
        attempt = attempt_id or self.attempt_id(step)
        info = ErrorInfo(error, f"{error}!", retryable)
        return self.send(FailStep(**self.base(now), step=step, attempt_id=attempt, error=info))

    def fire(self, timer_id: str, *, now: float | None = None) -> list[Event]:
        due = self.s.timers[timer_id].due if timer_id in self.s.timers else T0
        return self.send(FireTimer(**self.base(now if now is not None else due), timer_id=timer_id))

    def deliver(
        self, name: str, payload: Any = None, *, key: str | None = None, now: float = T0
    ) -> list[Event]:
        return self.send(
            DeliverEvent(**self.base(now), name=name, payload=payload, correlation_key=key)
        )

    def child_finished(self, child_id: str, status: str, **fields: Any) -> list[Event]:
        return self.send(ChildFinished(**self.base(T0), child_id=child_id, status=status, **fields))


# -- task ---------------------------------------------------------------------------------------


def test_task_success_goes_to_next_and_the_last_output_is_the_workflow_output() -> None:
    graph = graph_of(
        task("a", config={"url": "u"}, input={"id": "input.id", "fixed": 3}, next="b"),
        task("b", input={"prev": "steps.a.value"}),
    )
    run = Run(graph, {"id": 7})
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.STEP_SCHEDULED]
    assert run.started[0].data == {
        "execution_id": EX,
        "workflow": "wf",
        "version": 1,
        "tenant": "default",
        "input": {"id": 7},
    }
    assert run.started[1].data == {
        "step": "a",
        "visit": 1,
        "attempt": 1,
        "attempt_id": "a:1:1",
        "connector": "noop",
        "config": {"url": "u"},
        "args": {"id": 7, "fixed": 3},
        "idempotency_key": f"{EX}:a:1",
        "timeout_seconds": None,
    }
    events = run.complete("a", {"value": "x"})
    assert types(events) == [ev.STEP_SUCCEEDED, ev.STEP_SCHEDULED]
    assert events[0].data == {"step": "a", "attempt_id": "a:1:1", "output": {"value": "x"}}
    assert events[1].data["args"] == {"prev": "x"}
    events = run.complete("b", [1, 2])
    assert types(events) == [ev.STEP_SUCCEEDED, ev.EXECUTION_SUCCEEDED]
    assert events[-1].data == {"output": [1, 2]}
    assert run.s.status == "succeeded" and run.s.output == [1, 2] and run.s.active == {}
    assert run.s.outputs == {"a": {"value": "x"}, "b": [1, 2]}


def test_task_output_expression_maps_the_result() -> None:
    run = Run(graph_of(task("a", output="result.items[0].id")))
    events = run.complete("a", {"items": [{"id": "first"}, {"id": "second"}]})
    assert only(events, ev.STEP_SUCCEEDED)["output"] == "first"
    assert run.s.output == "first"


def test_start_records_parent_dedup_key_and_metadata() -> None:
    graph = graph_of(task("a"))
    command = StartExecution(
        execution_id="child",
        now=T0,
        workflow="wf",
        version=1,
        input=1,
        tenant="acme",
        dedup_key="k-1",
        parent=ParentRef("p", "sub"),
        metadata={"trigger": "webhook"},
    )
    events, state = decide_and_evolve(graph, None, command)
    assert events[0].data == {
        "execution_id": "child",
        "workflow": "wf",
        "version": 1,
        "tenant": "acme",
        "input": 1,
        "parent": {"execution_id": "p", "step": "sub"},
        "dedup_key": "k-1",
        "metadata": {"trigger": "webhook"},
    }
    assert state is not None and state.parent == {"execution_id": "p", "step": "sub"}
    assert state.tenant == "acme" and state.dedup_key == "k-1"


def test_start_honours_the_start_field() -> None:
    run = Run(graph_of(task("a"), task("b", next="a"), start="b"))
    assert only(run.started, ev.STEP_SCHEDULED)["step"] == "b"


# -- retries ------------------------------------------------------------------------------------


def test_retries_with_exponential_backoff_until_max_attempts() -> None:
    policy = {
        "max_attempts": 3,
        "backoff": {"initial_seconds": 2, "multiplier": 3, "max_seconds": 100},
    }
    run = Run(graph_of(task("a", input={"x": "input"}, retry=policy)), {"k": 1})
    events = run.fail("a", now=T0 + 1)
    assert types(events) == [ev.STEP_FAILED]
    assert events[0].data == {
        "step": "a",
        "attempt_id": "a:1:1",
        "attempt": 1,
        "error": {"type": "boom", "message": "boom!", "retryable": True},
        "retry": {"timer_id": "a:1:1:retry", "due": T0 + 1 + 2},
    }
    assert run.s.active["a"].phase == "retry_wait"
    events = run.fire("a:1:1:retry")
    assert types(events) == [ev.TIMER_FIRED, ev.STEP_SCHEDULED]
    second = events[1].data
    assert (second["attempt"], second["attempt_id"], second["visit"]) == (2, "a:1:2", 1)
    assert second["args"] == {"x": {"k": 1}} and second["idempotency_key"] == f"{EX}:a:1"
    events = run.fail("a", now=T0 + 10)
    assert only(events, ev.STEP_FAILED)["retry"]["due"] == T0 + 10 + 6  # 2 * 3**1
    run.fire("a:1:2:retry")
    events = run.fail("a", now=T0 + 50)
    assert types(events) == [ev.STEP_FAILED, ev.EXECUTION_FAILED]
    assert "retry" not in events[0].data and events[0].data["attempt"] == 3
    assert events[1].data == {
        "error": {"type": "boom", "message": "boom!", "retryable": True},
        "step": "a",
    }
    assert run.s.status == "failed" and run.s.timers == {}


def test_backoff_is_capped_by_max_seconds() -> None:
    policy = RetryPolicy(
        max_attempts=10, backoff=Backoff(initial_seconds=1, multiplier=10, max_seconds=60)
    )
    assert [backoff_delay(policy, n, f"a:1:{n}") for n in (1, 2, 3, 4)] == [1, 10, 60, 60]


@pytest.mark.parametrize("jitter", [0.1, 0.5, 1.0])
def test_jitter_is_deterministic_and_bounded(jitter: float) -> None:
    policy = RetryPolicy(max_attempts=5, jitter=jitter, backoff=Backoff(initial_seconds=8))
    delays = [backoff_delay(policy, 1, f"step-{i}:1:1") for i in range(200)]
    assert all(8 * (1 - jitter) <= d <= 8 for d in delays)
    assert len(set(delays)) > 150  # spread out, not a constant
    assert delays == [backoff_delay(policy, 1, f"step-{i}:1:1") for i in range(200)]


def test_jittered_due_time_replays_identically() -> None:
    graph = graph_of(
        task("a", retry={"max_attempts": 2, "jitter": 0.9, "backoff": {"initial_seconds": 10}})
    )
    dues = []
    for _ in range(2):
        run = Run(graph)
        dues.append(only(run.fail("a", now=T0 + 5), ev.STEP_FAILED)["retry"]["due"])
    assert dues[0] == dues[1]
    assert T0 + 5 + 1 <= dues[0] <= T0 + 5 + 10


def test_jitter_differs_between_executions() -> None:
    graph = graph_of(
        task("a", retry={"max_attempts": 2, "jitter": 1.0, "backoff": {"initial_seconds": 60}})
    )
    dues = set()
    for n in range(20):
        run = Run(graph, execution_id=f"ex-{n}")
        dues.add(only(run.fail("a"), ev.STEP_FAILED)["retry"]["due"])
    assert len(dues) > 1


def test_backoff_with_many_attempts_stays_at_max_seconds() -> None:
    policy = RetryPolicy(
        max_attempts=1000, backoff=Backoff(initial_seconds=1, multiplier=10, max_seconds=60)
    )
    assert backoff_delay(policy, 400, "a:1:400") == 60


RETRY_CASES = [
    # retry_on, non_retryable, error type, connector says retryable, retried?
    (None, [], "http.503", True, True),
    (None, [], "http.400", False, False),
    (["http.5*"], [], "http.503", False, True),  # retry_on overrides the connector's flag
    (["http.5*"], [], "http.404", True, False),
    (["http.5*", "timeout"], [], "timeout", True, True),
    (["*"], ["http.501", "auth.*"], "http.501", True, False),
    (["*"], ["http.501", "auth.*"], "auth.expired", True, False),
    (None, ["auth.*"], "auth.expired", True, False),
    (["Http.*"], [], "http.503", True, False),  # globs are case-sensitive
    ([], [], "http.503", True, False),
]


@pytest.mark.parametrize(
    ("retry_on", "non_retryable", "error", "retryable", "retried"), RETRY_CASES
)
def test_retry_on_and_non_retryable_globs(
    retry_on: list[str] | None, non_retryable: list[str], error: str, retryable: bool, retried: bool
) -> None:
    policy = {"max_attempts": 3, "retry_on": retry_on, "non_retryable": non_retryable}
    run = Run(graph_of(task("a", retry=policy, on_error="caught"), task("caught")))
    events = run.fail("a", error, retryable=retryable)
    assert ("retry" in events[0].data) is retried
    if retried:
        assert types(events) == [ev.STEP_FAILED] and run.s.active["a"].phase == "retry_wait"
    else:
        assert types(events) == [ev.STEP_FAILED, ev.STEP_SCHEDULED]
        assert events[1].data["step"] == "caught"
    policy_model = RetryPolicy.model_validate(policy)
    assert should_retry(policy_model, 1, ErrorInfo(error, "", retryable)) is retried
    assert should_retry(policy_model, 3, ErrorInfo(error, "", retryable)) is False  # max_attempts


def test_max_attempts_one_means_no_retry() -> None:
    run = Run(graph_of(task("a")))
    assert types(run.fail("a")) == [ev.STEP_FAILED, ev.EXECUTION_FAILED]


# -- timeouts -----------------------------------------------------------------------------------


def test_task_timeout_fires_a_timer_and_retries() -> None:
    graph = graph_of(
        task("a", timeout_seconds=30, retry={"max_attempts": 2, "backoff": {"initial_seconds": 5}})
    )
    run = Run(graph, now=T0)
    scheduled = only(run.started, ev.STEP_SCHEDULED)
    assert scheduled["deadline"] == T0 + 30 and scheduled["timeout_seconds"] == 30
    assert run.s.timers["a:1:1:timeout"].due == T0 + 30
    events = run.fire("a:1:1:timeout")
    assert types(events) == [ev.TIMER_FIRED, ev.STEP_FAILED]
    assert events[1].data["error"] == {
        "type": "timeout",
        "message": "step 'a' timed out",
        "retryable": True,
    }
    assert events[1].data["retry"] == {"timer_id": "a:1:1:retry", "due": T0 + 35}
    assert set(run.s.timers) == {"a:1:1:retry"}
    events = run.fire("a:1:1:retry")
    assert only(events, ev.STEP_SCHEDULED)["deadline"] == T0 + 35 + 30
    assert run.complete("a", "late", attempt_id="a:1:1", now=T0 + 40) == []  # the timed-out attempt
    assert types(run.complete("a", "ok", now=T0 + 41)) == [
        ev.STEP_SUCCEEDED,
        ev.EXECUTION_SUCCEEDED,
    ]
    assert run.s.output == "ok" and run.s.timers == {}


def test_completion_cancels_the_timeout_timer() -> None:
    run = Run(graph_of(task("a", timeout_seconds=5, next="b"), task("b")))
    run.complete("a")
    assert list(run.s.timers) == []
    assert run.fire("a:1:1:timeout", now=T0 + 5) == []


def test_timeout_without_retries_goes_to_on_error() -> None:
    run = Run(
        graph_of(
            task("a", timeout_seconds=1, on_error="b"),
            task("b", input={"why": "steps.a.error.type"}),
        )
    )
    events = run.fire("a:1:1:timeout")
    assert types(events) == [ev.TIMER_FIRED, ev.STEP_FAILED, ev.STEP_SCHEDULED]
    assert events[-1].data["args"] == {"why": "timeout"}


# -- on_error -----------------------------------------------------------------------------------


def test_on_error_catch_path_sees_the_error_and_continues() -> None:
    graph = graph_of(
        task("charge", on_error="refund", next="ship"),
        task("ship"),
        task("refund", input={"reason": "steps.charge.error.message"}, next="notify"),
        task("notify"),
    )
    run = Run(graph)
    events = run.fail("charge", "card.declined", retryable=False)
    assert types(events) == [ev.STEP_FAILED, ev.STEP_SCHEDULED]
    assert events[0].data["abandoned"] == []
    assert events[1].data["step"] == "refund" and events[1].data["args"] == {
        "reason": "card.declined!"
    }
    assert run.s.outputs["charge"] == {
        "error": {"type": "card.declined", "message": "card.declined!", "retryable": False}
    }
    run.complete("refund")
    assert types(run.complete("notify", "sent")) == [ev.STEP_SUCCEEDED, ev.EXECUTION_SUCCEEDED]
    assert "ship" not in run.s.visits


# -- choice -------------------------------------------------------------------------------------


CHOICE = (
    {
        "name": "route",
        "type": "choice",
        "default": "small",
        "choices": [
            {"when": "input.amount > `1000`", "next": "big"},
            {"when": "input.amount > `100`", "next": "medium"},
        ],
    },
    {"name": "big", "type": "succeed", "output": "'big'"},
    {"name": "medium", "type": "succeed", "output": "'medium'"},
    {"name": "small", "type": "succeed", "output": "'small'"},
)


@pytest.mark.parametrize(
    ("amount", "expected"), [(5000, "big"), (500, "medium"), (100, "small"), (1, "small")]
)
def test_choice_takes_the_first_truthy_rule_else_default(amount: int, expected: str) -> None:
    run = Run(graph_of(*CHOICE), {"amount": amount})
    assert types(run.started) == [
        ev.EXECUTION_STARTED,
        ev.CHOICE_MADE,
        ev.STEP_SUCCEEDED,
        ev.EXECUTION_SUCCEEDED,
    ]
    assert run.started[1].data == {"step": "route", "visit": 1, "next": expected}
    assert run.s.output == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "no"),
        (False, "no"),
        ("", "no"),
        ([], "no"),
        ({}, "no"),
        (True, "yes"),
        (0, "yes"),
        ("x", "yes"),
        ([0], "yes"),
        ({"a": None}, "yes"),
    ],
)
def test_choice_uses_jmespath_truthiness(value: Any, expected: str) -> None:
    graph = graph_of(
        {
            "name": "c",
            "type": "choice",
            "default": "no",
            "choices": [{"when": "input.flag", "next": "yes"}],
        },
        succeed_step("yes", "'yes'"),
        succeed_step("no", "'no'"),
    )
    assert Run(graph, {"flag": value}).s.output == expected


def succeed_step(name: str, output: str) -> dict[str, Any]:
    return {"name": name, "type": "succeed", "output": output}


def test_choice_without_match_or_default_fails_the_execution() -> None:
    graph = graph_of(
        {"name": "route", "type": "choice", "choices": [{"when": "input.ok", "next": "done"}]},
        {"name": "done", "type": "succeed"},
    )
    run = Run(graph, {"ok": False})
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.EXECUTION_FAILED]
    assert run.started[1].data == {
        "error": {"type": "no_choice_matched", "message": "route"},
        "step": "route",
    }


def test_choice_loop_with_a_counter_terminates_and_visits_increment() -> None:
    graph = graph_of(
        task("inc", input={"n": "steps.inc.n || `0`"}, next="again"),
        {
            "name": "again",
            "type": "choice",
            "default": "done",
            "choices": [{"when": "steps.inc.n < `3`", "next": "inc"}],
        },
        {"name": "done", "type": "succeed", "output": "steps.inc.n"},
    )
    run = Run(graph)
    n = 0
    while not run.s.terminal:
        scheduled = [e.data for e in run.history if e.type == ev.STEP_SCHEDULED][-1]
        n = scheduled["args"]["n"] + 1
        assert scheduled["visit"] == n and scheduled["attempt_id"] == f"inc:{n}:1"
        assert scheduled["idempotency_key"] == f"{EX}:inc:{n}"
        run.complete("inc", {"n": n})
        assert n < 10
    assert run.s.status == "succeeded" and run.s.output == 3
    assert [e.data["visit"] for e in run.history if e.type == ev.CHOICE_MADE] == [1, 2, 3]
    assert run.s.visits == {"inc": 3, "again": 3}


def test_a_choice_cycle_without_a_task_is_rejected_at_start() -> None:
    graph = unchecked_graph_of(
        {
            "name": "c1",
            "type": "choice",
            "default": "c2",
            "choices": [{"when": "input.stop", "next": "end"}],
        },
        {
            "name": "c2",
            "type": "choice",
            "default": "c1",
            "choices": [{"when": "input.stop", "next": "end"}],
        },
        {"name": "end", "type": "succeed"},
    )
    with pytest.raises(CommandRejected, match="too many transitions"):
        decide(
            graph, None, StartExecution(execution_id=EX, now=T0, workflow="wf", version=1, input={})
        )


def test_a_choice_cycle_reached_mid_execution_fails_the_execution() -> None:
    graph = unchecked_graph_of(
        task("a", next="c1"),
        {
            "name": "c1",
            "type": "choice",
            "default": "c2",
            "choices": [{"when": "input.stop", "next": "end"}],
        },
        {
            "name": "c2",
            "type": "choice",
            "default": "c1",
            "choices": [{"when": "input.stop", "next": "end"}],
        },
        {"name": "end", "type": "succeed"},
    )
    run = Run(graph, {"stop": False})
    events = run.complete("a")
    assert events and events[-1].type == ev.EXECUTION_FAILED


# -- parallel -----------------------------------------------------------------------------------


def parallel(name: str, *branches: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "parallel",
        "branches": [{"steps": b} for b in branches],
        **fields,
    }


def test_parallel_fans_out_and_joins_outputs_in_branch_order() -> None:
    graph = graph_of(
        parallel(
            "fan", [task("a1", next="a2"), task("a2")], [task("b")], [task("c")], next="after"
        ),
        task("after", input={"all": "steps.fan"}),
    )
    run = Run(graph)
    assert (
        types(run.started) == [ev.EXECUTION_STARTED, ev.PARALLEL_STARTED] + [ev.STEP_SCHEDULED] * 3
    )
    assert run.started[1].data == {"step": "fan", "visit": 1, "branches": 3}
    assert [e.data["step"] for e in run.started[2:]] == ["a1", "b", "c"]
    assert types(run.complete("c", "C")) == [ev.STEP_SUCCEEDED, ev.BRANCH_COMPLETED]
    assert run.history[-1].data == {"step": "fan", "branch": 2, "output": "C"}
    run.complete("a1", "A1")
    run.complete("b", "B")
    events = run.complete("a2", "A2")
    assert types(events) == [
        ev.STEP_SUCCEEDED,
        ev.BRANCH_COMPLETED,
        ev.STEP_SUCCEEDED,
        ev.STEP_SCHEDULED,
    ]
    assert events[2].data == {"step": "fan", "output": ["A2", "B", "C"]}
    assert events[3].data["args"] == {"all": ["A2", "B", "C"]}
    assert run.s.joins == {}


def test_parallel_branches_that_finish_at_once_join_in_the_same_decision() -> None:
    graph = graph_of(
        parallel(
            "fan",
            [{"name": "x", "type": "succeed", "output": "'X'"}],
            [{"name": "y", "type": "succeed", "output": "input"}],
        ),
    )
    run = Run(graph, 5)
    assert run.s.status == "succeeded" and run.s.output == ["X", 5]


def test_branch_failure_abandons_siblings_and_goes_to_on_error() -> None:
    graph = graph_of(
        parallel(
            "fan",
            [task("a")],
            [task("b", timeout_seconds=60)],
            [{"name": "w", "type": "wait", "seconds": 5}],
            [{"name": "e", "type": "wait_for_event", "event": "go", "timeout_seconds": 9}],
            next="ok",
            on_error="recover",
        ),
        task("ok"),
        task("recover", input={"why": "steps.fan.error.type"}),
    )
    run = Run(graph)
    assert len(run.s.timers) == 3
    events = run.fail("a", "broken", retryable=False)
    assert types(events) == [ev.STEP_FAILED, ev.STEP_FAILED, ev.STEP_SCHEDULED]
    assert events[1].data == {
        "step": "fan",
        "error": {"type": "broken", "message": "broken!", "retryable": False},
        "failed_step": "a",
        "abandoned": ["b", "e", "w"],
    }
    assert events[2].data["step"] == "recover" and events[2].data["args"] == {"why": "broken"}
    assert set(run.s.active) == {"recover"} and run.s.timers == {} and run.s.joins == {}
    # the siblings' late answers are ignored
    assert run.complete("b", "late", attempt_id="b:1:1") == []
    assert run.fire("w:1:wait", now=T0 + 5) == []
    assert run.deliver("go", {}, key=None) == [
        Event(ev.SIGNAL_RECEIVED, {"name": "go", "payload": {}})
    ]
    assert types(run.complete("recover")) == [ev.STEP_SUCCEEDED, ev.EXECUTION_SUCCEEDED]


def test_branch_failure_without_on_error_fails_the_execution() -> None:
    run = Run(graph_of(parallel("fan", [task("a")], [task("b")])))
    events = run.fail("b", retryable=False)
    assert types(events) == [ev.STEP_FAILED, ev.STEP_FAILED, ev.EXECUTION_FAILED]
    assert events[-1].data["step"] == "fan"
    assert run.complete("a", attempt_id="a:1:1") == []


def test_nested_parallel_failure_abandons_the_whole_subtree() -> None:
    inner = parallel("inner", [task("x")], [task("y")])
    run = Run(graph_of(parallel("outer", [inner], [task("z")], on_error="caught"), task("caught")))
    assert set(run.s.active) == {"outer", "inner", "x", "y", "z"}
    events = run.fail("x", retryable=False)
    assert [e.data.get("abandoned") for e in events if e.type == ev.STEP_FAILED] == [
        [],
        ["y"],
        ["z"],
    ]
    assert set(run.s.active) == {"caught"}


def test_a_fail_step_in_a_branch_fails_the_parallel() -> None:
    graph = graph_of(
        parallel(
            "fan", [{"name": "nope", "type": "fail", "error": "Nope"}], [task("b")], on_error="c"
        ),
        task("c"),
    )
    run = Run(graph)
    assert types(run.started) == [
        ev.EXECUTION_STARTED,
        ev.PARALLEL_STARTED,
        ev.STEP_FAILED,
        ev.STEP_SCHEDULED,
    ]
    assert run.started[2].data["failed_step"] == "nope" and run.started[3].data["step"] == "c"
    assert "b" not in run.s.visits  # later branches are not entered once the parallel failed


# -- wait ---------------------------------------------------------------------------------------


def test_wait_seconds_schedules_a_timer_and_continues_when_it_fires() -> None:
    run = Run(
        graph_of({"name": "w", "type": "wait", "seconds": 90, "next": "a"}, task("a")), now=T0 + 1
    )
    assert run.started[-1] == Event(
        ev.TIMER_SCHEDULED,
        {
            "step": "w",
            "visit": 1,
            "timer_id": "w:1:wait",
            "due": T0 + 91,
            "purpose": "wait",
        },
    )
    events = run.fire("w:1:wait")
    assert types(events) == [ev.TIMER_FIRED, ev.STEP_SUCCEEDED, ev.STEP_SCHEDULED]
    assert events[0].data == {"timer_id": "w:1:wait", "step": "w", "purpose": "wait"}
    assert run.fire("w:1:wait") == []  # a timer fires once
    assert run.fire("nope") == []


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T12:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        ("2026-03-01T12:00:00", datetime(2026, 3, 1, 12, tzinfo=UTC)),  # naive means UTC
        ("2026-03-01T12:00:00.250000", datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_wait_until_an_iso_time(until: str, expected: datetime) -> None:
    run = Run(graph_of({"name": "w", "type": "wait", "until": "input.at"}), {"at": until})
    assert only(run.started, ev.TIMER_SCHEDULED)["due"] == expected.timestamp()


def test_wait_until_an_epoch_number() -> None:
    run = Run(graph_of({"name": "w", "type": "wait", "until": "input.at"}), {"at": 1_800_000_000})
    assert only(run.started, ev.TIMER_SCHEDULED)["due"] == 1_800_000_000.0


@pytest.mark.parametrize(
    "value",
    ["tomorrow", None, {"at": 1}, True],
)
def test_wait_until_something_else_fails_cleanly(value: Any) -> None:
    run = Run(graph_of({"name": "w", "type": "wait", "until": "input.at"}), {"at": value})
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.EXECUTION_FAILED]
    assert run.started[-1].data["error"]["type"] == "expression"


# -- wait_for_event -----------------------------------------------------------------------------


WAIT_APPROVAL = {
    "name": "approval",
    "type": "wait_for_event",
    "event": "approved",
    "correlation_key": "input.order",
    "timeout_seconds": 600,
    "on_timeout": "escalate",
    "next": "ship",
}


def test_wait_for_event_matches_on_the_correlation_key() -> None:
    run = Run(
        graph_of(WAIT_APPROVAL, task("ship", input={"by": "steps.approval.by"}), task("escalate")),
        {"order": 7},
    )
    assert run.started[-1] == Event(
        ev.EVENT_AWAITED,
        {
            "step": "approval",
            "visit": 1,
            "event": "approved",
            "correlation_key": "7",
            "timer_id": "approval:1:event_timeout",
            "due": T0 + 600,
        },
    )
    assert run.deliver("approved", {"by": "x"}, key="8") == []  # someone else's order
    assert run.deliver("rejected", {"by": "x"}, key="7") == []  # another event
    events = run.deliver("approved", {"by": "ann"}, key="7")
    assert types(events) == [ev.EVENT_RECEIVED, ev.STEP_SUCCEEDED, ev.STEP_SCHEDULED]
    assert events[0].data == {"step": "approval", "name": "approved", "payload": {"by": "ann"}}
    assert events[1].data == {"step": "approval", "output": {"by": "ann"}}
    assert events[2].data["args"] == {"by": "ann"}
    assert run.s.timers == {}
    assert run.deliver("approved", {"by": "bob"}, key="7") == []  # a duplicate delivery


def test_a_direct_signal_reaches_a_correlated_wait() -> None:
    run = Run(graph_of(WAIT_APPROVAL, task("ship"), task("escalate")), {"order": 7})
    assert types(run.deliver("approved", 1)) == [
        ev.EVENT_RECEIVED,
        ev.STEP_SUCCEEDED,
        ev.STEP_SCHEDULED,
    ]


def test_an_operators_reason_is_recorded_on_the_event_it_delivers() -> None:
    run = Run(graph_of(WAIT_APPROVAL, task("ship"), task("escalate")), {"order": 7})
    buffered = run.send(DeliverEvent(**run.base(T0), name="note", payload=None, reason="just checking"))
    assert buffered == [Event(ev.SIGNAL_RECEIVED, {"name": "note", "payload": None, "reason": "just checking"})]
    events = run.send(DeliverEvent(**run.base(T0), name="approved", payload=1, correlation_key="7", reason="ok'd"))
    assert events[0].data == {"step": "approval", "name": "approved", "payload": 1, "reason": "ok'd"}
    assert "reason" not in run.deliver("other", 2)[0].data  # none given: the event is as before


def test_wait_for_event_timeout_goes_to_on_timeout() -> None:
    run = Run(graph_of(WAIT_APPROVAL, task("ship"), task("escalate")), {"order": 7})
    events = run.fire("approval:1:event_timeout")
    assert types(events) == [ev.TIMER_FIRED, ev.STEP_FAILED, ev.STEP_SCHEDULED]
    assert events[1].data == {
        "step": "approval",
        "error": {"type": "timeout", "message": "no event 'approved' in time", "retryable": False},
        "abandoned": [],
    }
    assert events[2].data["step"] == "escalate"
    assert run.deliver("approved", {}, key="7") == []  # too late


def test_wait_for_event_timeout_without_on_timeout_fails_the_execution() -> None:
    run = Run(
        graph_of({"name": "e", "type": "wait_for_event", "event": "go", "timeout_seconds": 1})
    )
    assert types(run.fire("e:1:event_timeout")) == [
        ev.TIMER_FIRED,
        ev.STEP_FAILED,
        ev.EXECUTION_FAILED,
    ]
    assert run.s.error == {
        "type": "timeout",
        "message": "no event 'go' in time",
        "retryable": False,
    }


def test_a_signal_that_arrives_before_the_wait_is_buffered_and_consumed() -> None:
    graph = graph_of(
        task("first", next="e"),
        {"name": "e", "type": "wait_for_event", "event": "go", "next": "last"},
        task("last", input={"got": "steps.e"}),
    )
    run = Run(graph)
    assert run.deliver("other", "o") == [
        Event(ev.SIGNAL_RECEIVED, {"name": "other", "payload": "o"})
    ]
    assert run.deliver("go", {"n": 1}) == [
        Event(ev.SIGNAL_RECEIVED, {"name": "go", "payload": {"n": 1}})
    ]
    assert run.s.signals == (("other", "o"), ("go", {"n": 1}))
    assert run.deliver("go", "keyed", key="k") == []  # a correlated event is never buffered
    events = run.complete("first")
    assert types(events) == [
        ev.STEP_SUCCEEDED,
        ev.EVENT_AWAITED,
        ev.EVENT_RECEIVED,
        ev.STEP_SUCCEEDED,
        ev.STEP_SCHEDULED,
    ]
    assert events[2].data == {"step": "e", "name": "go", "payload": {"n": 1}, "buffered": 1}
    assert events[-1].data["args"] == {"got": {"n": 1}}
    assert list(run.s.signals) == [("other", "o")]


# -- subworkflow --------------------------------------------------------------------------------


SUB = {
    "name": "sub",
    "type": "subworkflow",
    "workflow": "child",
    "version": 2,
    "input": {"id": "input.id"},
    "next": "after",
    "on_error": "handle",
}


def test_subworkflow_starts_a_child_with_a_deterministic_id() -> None:
    graph = graph_of(SUB, task("after", input={"r": "steps.sub"}), task("handle"))
    run = Run(graph, {"id": 9})
    started = only(run.started, ev.CHILD_STARTED)
    child_id = str(uuid.uuid5(CHILD_NAMESPACE, f"{EX}/sub/1"))
    assert started == {
        "step": "sub",
        "visit": 1,
        "child_id": child_id,
        "workflow": "child",
        "version": 2,
        "input": {"id": 9},
    }
    assert only(Run(graph, {"id": 9}).started, ev.CHILD_STARTED)["child_id"] == child_id
    assert (
        only(Run(graph, {"id": 9}, execution_id="ex-2").started, ev.CHILD_STARTED)["child_id"]
        != child_id
    )
    assert run.child_finished("someone-else", "succeeded") == []
    events = run.child_finished(child_id, "succeeded", output={"ok": 1})
    assert types(events) == [ev.STEP_SUCCEEDED, ev.STEP_SCHEDULED]
    assert events[0].data == {"step": "sub", "child_id": child_id, "output": {"ok": 1}}
    assert events[1].data["args"] == {"r": {"ok": 1}}
    assert run.child_finished(child_id, "succeeded", output={"ok": 2}) == []


@pytest.mark.parametrize(
    ("status", "error", "recorded"),
    [
        ("failed", {"type": "Boom", "message": "m"}, {"type": "Boom", "message": "m"}),
        ("cancelled", None, {"type": "child.cancelled", "message": ""}),
    ],
)
def test_subworkflow_failure_goes_to_on_error(
    status: str, error: Any, recorded: dict[str, Any]
) -> None:
    run = Run(graph_of(SUB, task("after"), task("handle")), {"id": 1})
    child_id = run.s.active["sub"].child_id
    assert child_id is not None
    events = run.child_finished(child_id, status, error=error)
    assert types(events) == [ev.STEP_FAILED, ev.STEP_SCHEDULED]
    assert events[0].data == {
        "step": "sub",
        "child_id": child_id,
        "error": recorded,
        "abandoned": [],
    }
    assert events[1].data["step"] == "handle"


def test_subworkflow_failure_without_on_error_fails_the_parent() -> None:
    run = Run(graph_of({**SUB, "on_error": None, "next": None}), {"id": 1})
    child_id = run.s.active["sub"].child_id
    assert child_id is not None
    events = run.child_finished(child_id, "failed", error={"type": "X", "message": "y"})
    assert types(events) == [ev.STEP_FAILED, ev.EXECUTION_FAILED]
    assert run.s.error == {"type": "X", "message": "y"}


# -- succeed, fail, workflow output -------------------------------------------------------------


def test_succeed_output_expression() -> None:
    run = Run(
        graph_of(
            task("a", next="ok"),
            {"name": "ok", "type": "succeed", "output": "{v: steps.a, i: input}"},
        ),
        1,
    )
    events = run.complete("a", "A")
    assert types(events) == [ev.STEP_SUCCEEDED, ev.STEP_SUCCEEDED, ev.EXECUTION_SUCCEEDED]
    assert events[-1].data == {"output": {"v": "A", "i": 1}}


def test_workflow_output_expression_is_evaluated_over_the_context() -> None:
    graph = graph_of(
        task("a", next="b"), task("b"), output="{a: steps.a, b: steps.b, id: execution.id}"
    )
    run = Run(graph)
    run.complete("a", 1)
    assert run.complete("b", 2)[-1].data == {"output": {"a": 1, "b": 2, "id": EX}}


def test_succeed_without_output_gives_null() -> None:
    run = Run(graph_of({"name": "ok", "type": "succeed"}))
    assert run.s.status == "succeeded" and run.s.output is None


def test_fail_step_with_cause() -> None:
    graph = graph_of(
        task("a", next="no"),
        {
            "name": "no",
            "type": "fail",
            "error": "OrderRejected",
            "cause": "join(' ', ['rejected:', steps.a.reason])",
        },
    )
    run = Run(graph)
    events = run.complete("a", {"reason": "stock"})
    assert events[-1] == Event(
        ev.EXECUTION_FAILED,
        {
            "error": {"type": "OrderRejected", "message": "rejected: stock"},
            "step": "no",
        },
    )
    assert run.s.status == "failed" and run.s.error == {
        "type": "OrderRejected",
        "message": "rejected: stock",
    }


def test_fail_step_without_cause() -> None:
    run = Run(graph_of({"name": "no", "type": "fail"}))
    assert run.s.error == {"type": "Failed", "message": ""}


# -- cancel, stale answers, terminal executions -------------------------------------------------


def test_cancel_ends_a_running_execution_and_later_answers_are_ignored() -> None:
    run = Run(graph_of(task("a", timeout_seconds=10, next="b"), task("b")))
    events = run.send(CancelExecution(execution_id=EX, now=T0, reason="user", actor="ann"))
    assert events == [
        Event(
            ev.EXECUTION_CANCELLED,
            {"reason": "user", "error": {"type": "cancelled", "message": "user"}},
        )
    ]
    assert run.s.status == "cancelled" and run.s.active == {} and run.s.timers == {}
    assert run.complete("a", attempt_id="a:1:1") == []
    assert run.fire("a:1:1:timeout", now=T0 + 10) == []
    assert run.deliver("x", key="k") == []
    with pytest.raises(CommandRejected, match="already cancelled"):
        run.send(CancelExecution(execution_id=EX, now=T0))
    with pytest.raises(CommandRejected):
        run.deliver("x")  # a direct signal to a finished execution is an error for the sender


def test_commands_on_a_finished_execution_change_nothing() -> None:
    run = Run(graph_of(task("a")))
    run.complete("a")
    assert run.s.status == "succeeded"
    assert run.complete("a", attempt_id="a:1:1") == []
    assert run.fail("a", attempt_id="a:1:1") == []
    assert run.child_finished("c", "succeeded") == []
    with pytest.raises(ExecutionExists):
        run.send(StartExecution(execution_id=EX, now=T0, workflow="wf", version=1))


def test_stale_answers_produce_no_events() -> None:
    run = Run(graph_of(task("a", retry={"max_attempts": 3}, next="b"), task("b")))
    assert run.complete("a", attempt_id="a:1:9") == []  # an attempt that never existed
    assert run.complete("nope", attempt_id="a:1:1") == []  # not a running step
    run.fail("a")
    assert run.complete("a", attempt_id="a:1:1") == []  # in retry_wait: the old attempt answers
    assert run.fail("a", attempt_id="a:1:1") == []  # a redelivered failure
    run.fire("a:1:1:retry")
    assert types(run.complete("a", "ok")) == [ev.STEP_SUCCEEDED, ev.STEP_SCHEDULED]
    assert run.complete("a", "again", attempt_id="a:1:2") == []  # a duplicate completion
    assert run.fail("a", attempt_id="a:1:2") == []
    assert run.s.outputs["a"] == "ok"


def test_start_on_an_existing_execution_raises_execution_exists() -> None:
    graph = graph_of(task("a"))
    run = Run(graph)
    with pytest.raises(ExecutionExists):
        decide(graph, run.s, StartExecution(execution_id=EX, now=T0, workflow="wf", version=1))


def test_commands_for_an_unknown_execution_are_rejected() -> None:
    with pytest.raises(CommandRejected, match="does not exist"):
        decide(
            graph_of(task("a")),
            None,
            CompleteStep(execution_id=EX, now=T0, step="a", attempt_id="a:1:1"),
        )


# -- expression errors --------------------------------------------------------------------------


def test_task_input_expression_error_fails_the_execution_cleanly() -> None:
    run = Run(graph_of(task("a", input={"n": "abs(input.name)"})), {"name": "text"})
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.EXECUTION_FAILED]
    error = run.started[-1].data["error"]
    assert (
        error["type"] == "expression" and error["retryable"] is False and "abs" in error["message"]
    )
    assert run.started[-1].data["step"] == "a"


def test_task_output_expression_error_is_a_non_retryable_step_failure() -> None:
    run = Run(
        graph_of(
            task("a", output="abs(result)", retry={"max_attempts": 5}, on_error="b"), task("b")
        )
    )
    events = run.complete("a", "not a number")
    assert types(events) == [ev.STEP_FAILED, ev.STEP_SCHEDULED]
    assert events[0].data["error"]["type"] == "expression" and "retry" not in events[0].data


def test_choice_expression_error_fails_the_execution() -> None:
    run = Run(
        graph_of(
            {"name": "c", "type": "choice", "choices": [{"when": "abs(input)", "next": "d"}]},
            {"name": "d", "type": "succeed"},
        ),
        "x",
    )
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.EXECUTION_FAILED]
    assert run.s.error is not None and run.s.error["type"] == "expression"


def test_workflow_output_expression_error_fails_the_execution() -> None:
    run = Run(graph_of(task("a"), output="abs(steps.a)"))
    events = run.complete("a", "x")
    assert types(events) == [ev.STEP_SUCCEEDED, ev.EXECUTION_FAILED]
    assert events[-1].data["error"]["type"] == "expression" and events[-1].data["step"] is None


def test_expression_error_inside_a_branch_fails_the_parallel() -> None:
    graph = graph_of(
        parallel("fan", [task("ok")], [task("bad", input={"x": "abs(input)"})], on_error="c"),
        task("c"),
    )
    run = Run(graph, "text")
    assert types(run.started) == [
        ev.EXECUTION_STARTED,
        ev.PARALLEL_STARTED,
        ev.STEP_SCHEDULED,
        ev.STEP_FAILED,
        ev.STEP_SCHEDULED,
    ]
    assert (
        run.started[3].data["abandoned"] == ["ok"] and run.started[3].data["failed_step"] == "bad"
    )
