"""Bad values inside the machine become recorded failures with a clear error, never exceptions
and never events that strict JSON cannot hold."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core import events as ev
from orchestrator.core.events import Event
from schemas.envelope import Envelope
from tests.unit.test_machine import EX, T0, Run, graph_of, task, types

MIXED = [{"k": 1}, {"k": "x"}]
DEEP: Any = 0
for _ in range(300):
    DEEP = [DEEP]


def storable(events: list[Event]) -> None:
    """Every event encodes as the engine would store it (strict JSON)."""
    chain = ""
    for sequence, event in enumerate(events, 1):
        envelope = Envelope.sealed(
            chain, id=f"{EX}/{sequence}", type=event.type, subject=EX, sequence=sequence,
            time="2026-01-01T00:00:00Z", workflow="wf", workflowversion=1, data=event.data,
        )  # fmt: skip
        chain = envelope.chainhash or ""


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("max_by(input, &k)", "cannot compare these values"),  # TypeError inside jmespath
        ("sort_by(input, &k)", "sort_by()"),
        ("input[::0]", "slice step cannot be zero"),  # ValueError inside jmespath
        ("abs(input[5])", "invalid type for value: None"),  # a function on null
        ("to_number('1e400')", "inf is not a JSON number"),  # a value JSON cannot hold
        ("sum([`1e308`, `1e308`])", "inf is not a JSON number"),
    ],
)
def test_an_input_mapping_that_fails_on_the_data_fails_the_execution(expression: str, reason: str) -> None:
    run = Run(graph_of(task("a", input={"x": expression})), MIXED)
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.EXECUTION_FAILED]
    error = run.started[-1].data["error"]
    assert error["type"] == "expression" and error["retryable"] is False
    assert reason in error["message"] and expression in error["message"]
    storable(run.history)


def test_an_output_expression_on_mixed_types_is_a_non_retryable_step_failure() -> None:
    graph = graph_of(task("a", output="max_by(result, &k)", retry={"max_attempts": 5}, on_error="b"), task("b"))
    run = Run(graph)
    events = run.complete("a", MIXED)
    assert types(events) == [ev.STEP_FAILED, ev.STEP_SCHEDULED]
    failed = events[0].data
    assert failed["error"]["type"] == "expression" and failed["error"]["retryable"] is False
    assert "retry" not in failed
    storable(run.history)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ({"total": float("inf")}, "output at total: inf is not a JSON number"),
        ([1, float("nan")], "output at [1]: nan is not a JSON number"),
        ({"n": 10**5000}, "longer than 4300 digits"),
        ({"s": "\ud800"}, "unpaired surrogate"),
        ({"when": object()}, "is not a JSON value"),
        (DEEP, "nested deeper than"),
    ],
)
def test_a_step_output_that_is_not_strict_json_fails_the_step(output: Any, reason: str) -> None:
    run = Run(graph_of(task("a", retry={"max_attempts": 3}, on_error="b"), task("b")))
    events = run.complete("a", output)
    assert types(events) == [ev.STEP_FAILED, ev.STEP_SCHEDULED]  # not retried: it would fail again
    error = events[0].data["error"]
    assert error["type"] == "invalid_output" and error["retryable"] is False
    assert reason in error["message"] and "step 'a'" in error["message"]
    assert run.s.active["b"].args == {}
    storable(run.history)


def test_a_strict_json_output_passes_the_check() -> None:
    run = Run(graph_of(task("a")))
    output = {"n": 10**4000, "f": 1.7976931348623157e308, "nested": [[[{"ok": "é"}]]]}
    events = run.complete("a", output)
    assert types(events) == [ev.STEP_SUCCEEDED, ev.EXECUTION_SUCCEEDED]
    assert events[-1].data["output"] == output


@pytest.mark.parametrize(
    ("until", "reason"),
    [
        ("`1e300`", "not a time between the years 1 and 9999"),
        ("`-1e300`", "not a time between the years 1 and 9999"),
        ("'9999-12-31T23:59:59-05:00'", "out of range"),
        ("'tomorrow'", "not an ISO-8601 time"),
    ],
)
def test_a_wait_until_out_of_range_fails_the_execution(until: str, reason: str) -> None:
    run = Run(graph_of({"name": "w", "type": "wait", "until": until}))
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.EXECUTION_FAILED]
    assert reason in run.started[-1].data["error"]["message"]
    storable(run.history)


def test_a_wait_until_in_range_schedules_its_timer() -> None:
    run = Run(graph_of({"name": "w", "type": "wait", "until": "'9999-12-31T23:59:59Z'"}))
    assert types(run.started) == [ev.EXECUTION_STARTED, ev.TIMER_SCHEDULED]
    assert run.started[-1].data["due"] == 253_402_300_799


def test_a_workflow_output_that_is_not_strict_json_fails_the_execution() -> None:
    run = Run(graph_of(task("a"), output="to_number('nan')"))
    events = run.complete("a", 1, now=T0 + 1)
    assert types(events) == [ev.STEP_SUCCEEDED, ev.EXECUTION_FAILED]
    error = events[-1].data["error"]
    assert error == {"type": "expression", "message": error["message"], "retryable": False}
    assert "nan is not a JSON number" in error["message"]
    storable(run.history)
