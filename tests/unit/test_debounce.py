"""Debounce, the pure part: a quiet start waits on a debounce timer; a later start with the same
key replaces its input and pushes the timer; a stale fire or a start after the period changes
nothing; the wait index entry exists only while quiet; bad declarations are refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core import events as ev
from orchestrator.core.commands import DebounceStart, FireTimer, StartExecution
from orchestrator.core.debounce import debounce_wait_key, debounce_wait_keys
from orchestrator.core.events import Event
from orchestrator.core.machine import decide_and_evolve
from orchestrator.core.state import ExecutionState
from orchestrator.limits.debounce import debounce_of
from schemas.graph import WorkflowGraph
from schemas.validation import DefinitionError, parse_definition

DEBOUNCED: dict[str, Any] = {
    "name": "debounced",
    "debounce": {"key": "input.customer", "period": "10s"},
    "steps": [{"name": "s", "type": "task", "connector": "noop", "input": {"n": "input.n"}}],
}
GRAPH = WorkflowGraph.build(parse_definition(DEBOUNCED).with_version(1))


def start(now: float = 100.0, n: int = 1) -> tuple[list[Event], ExecutionState]:
    command = StartExecution(
        execution_id="e", now=now, workflow="debounced", version=1, input={"customer": "a", "n": n},
        not_before=now + 10, debounce_key='"a"',
    )  # fmt: skip
    events, state = decide_and_evolve(GRAPH, None, command)
    assert state is not None
    return events, state


def step(state: ExecutionState, command: Any) -> tuple[list[Event], ExecutionState]:
    events, after = decide_and_evolve(GRAPH, state, command)
    assert after is not None
    return events, after


def later(now: float, n: int) -> DebounceStart:
    return DebounceStart(execution_id="e", now=now, input={"customer": "a", "n": n}, due=now + 10)


def test_a_debounced_start_waits_quietly_on_a_debounce_timer() -> None:
    events, state = start()
    assert [e.type for e in events] == [ev.EXECUTION_STARTED, ev.TIMER_SCHEDULED]
    assert events[0].data["debounce_key"] == '"a"'
    assert events[1].data == {"step": "s", "visit": 0, "timer_id": "s:0:debounce:0", "due": 110.0, "purpose": "debounce"}
    assert state.debouncing and debounce_wait_keys(state) == {debounce_wait_key("default", "debounced", '"a"')}


def test_later_starts_replace_the_input_and_push_the_timer_then_it_runs_once_with_the_last() -> None:
    _, state = start()
    for index, now in enumerate((101.0, 102.0, 103.0, 104.0), start=2):
        events, state = step(state, later(now, index))
        assert [e.type for e in events] == [ev.START_DEBOUNCED, ev.TIMER_SCHEDULED]
        assert list(state.timers) == [f"s:0:debounce:{index - 1}"] and state.timers[f"s:0:debounce:{index - 1}"].due == now + 10
    assert state.input == {"customer": "a", "n": 5} and state.debounced == 4
    stale, state = step(state, FireTimer(execution_id="e", now=110.0, timer_id="s:0:debounce:0"))
    assert stale == []  # the first timer was pushed back: its fire finds nothing
    events, state = step(state, FireTimer(execution_id="e", now=114.0, timer_id="s:0:debounce:4"))
    assert [e.type for e in events] == [ev.TIMER_FIRED, ev.STEP_SCHEDULED]
    assert events[1].data["args"] == {"n": 5}
    assert not state.debouncing and debounce_wait_keys(state) == set()
    after, _ = step(state, later(115.0, 6))
    assert after == []  # its quiet period is over: the caller starts a new execution


def test_the_debounce_of_a_start_is_its_key_value_and_the_end_of_its_quiet_period() -> None:
    definition = parse_definition(DEBOUNCED)
    assert debounce_of(definition, {"customer": "a"}, 100.0) == ('"a"', 110.0)
    assert debounce_of(definition, {}, 100.0) == ("null", 110.0)  # no key: one group
    assert debounce_of(parse_definition({**DEBOUNCED, "debounce": None}), {}, 100.0) is None
    assert debounce_wait_key("t1", "w", '"a"') != debounce_wait_key("t2", "w", '"a"')  # tenants apart


@pytest.mark.parametrize(
    ("debounce", "where"),
    [
        ({"period": 1}, "debounce.key"),
        ({"key": "input.[", "period": 1}, "debounce.key"),
        ({"key": "input.a", "period": 0}, "debounce.period"),
        ({"key": "input.a", "period": -5}, "debounce.period"),
        ({"key": "input.a", "period": "soon"}, "debounce.period"),
        ({"key": "input.a"}, "debounce.period"),
        ({"key": "input.a", "period": 1, "max_wait": 3}, "debounce.max_wait"),
    ],
)
def test_bad_debounces_are_refused_by_name(debounce: dict[str, Any], where: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        parse_definition({**DEBOUNCED, "debounce": debounce})
    assert where in str(refused.value)
