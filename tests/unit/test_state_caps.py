"""One execution's state stays bounded: buffered signals are capped, remembered event ids evicted
oldest first. Both caps are constants of the pure machine, so replays fold the same states."""

from __future__ import annotations

import pytest

from orchestrator.core import events as ev
from orchestrator.core.commands import DeliverEvent, StartExecution
from orchestrator.core.events import Event
from orchestrator.core.machine import CommandRejected, SignalBufferFull, decide, decide_and_evolve
from orchestrator.core.state import MAX_BUFFERED_SIGNALS, MAX_EVENT_IDS, ExecutionState, evolve, fold
from schemas.graph import WorkflowGraph
from schemas.validation import parse_definition

T0 = 1_767_225_600.0
EX = "ex-1"
GRAPH = WorkflowGraph.build(
    parse_definition(
        {
            "name": "wf",
            "version": 1,
            "steps": [
                {"name": "w", "type": "wait_for_event", "event": "go", "next": "x"},
                {"name": "x", "type": "wait_for_event", "event": "never"},
            ],
        }
    )
)


def started() -> ExecutionState:
    _, state = decide_and_evolve(GRAPH, None, StartExecution(execution_id=EX, now=T0, workflow="wf", version=1))
    assert state is not None
    return state


def signal(name: str = "later", event_id: str | None = None) -> DeliverEvent:
    return DeliverEvent(execution_id=EX, now=T0 + 1, name=name, event_id=event_id)


def test_a_signal_past_the_buffer_cap_is_refused_not_dropped() -> None:
    full = fold([Event(ev.SIGNAL_RECEIVED, {"name": "later", "payload": n}) for n in range(MAX_BUFFERED_SIGNALS)], started())
    assert full is not None and len(full.signals) == MAX_BUFFERED_SIGNALS
    with pytest.raises(SignalBufferFull, match="1000 signals buffered"):
        decide(GRAPH, full, signal())
    assert issubclass(SignalBufferFull, CommandRejected)
    # a signal a step waits for is taken, not buffered: the cap does not stand in its way
    assert [e.type for e in decide(GRAPH, full, signal("go"))][:2] == [ev.EVENT_RECEIVED, ev.STEP_SUCCEEDED]
    # below the cap, it is buffered as always
    assert [e.type for e in decide(GRAPH, started(), signal())] == [ev.SIGNAL_RECEIVED]


def test_remembered_event_ids_are_evicted_oldest_first() -> None:
    state = started()
    for n in range(MAX_EVENT_IDS + 5):
        state = evolve(state, Event(ev.SIGNAL_RECEIVED, {"name": "x", "event_id": f"id-{n}"}))
        if len(state.signals) >= 100:  # keep the buffer small; only the ids matter here
            state = evolve(state, Event(ev.EVENT_RECEIVED, {"step": "w", "name": "x", "buffered": 0}))
    assert len(state.event_ids) == MAX_EVENT_IDS
    assert state.event_ids[0] == "id-5" and state.event_ids[-1] == f"id-{MAX_EVENT_IDS + 4}"
    assert decide(GRAPH, state, signal("go", "id-5")) == []  # still remembered: a redelivery
    assert decide(GRAPH, state, signal("go", "id-4")) != []  # forgotten: taken again


def test_a_repeated_event_id_is_ignored_even_after_the_execution_finished() -> None:
    _, state = decide_and_evolve(GRAPH, started(), signal("go", "key-1"))
    assert state is not None and "key-1" in state.event_ids
    done = evolve(state, Event(ev.EXECUTION_CANCELLED, {"reason": "test"}))
    assert decide(GRAPH, done, signal("go", "key-1")) == []  # the retry of a delivered signal
    with pytest.raises(CommandRejected, match="already cancelled"):
        decide(GRAPH, done, signal("go", "key-2"))  # a new signal to a finished execution
