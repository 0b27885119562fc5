"""Concurrency slots in the pure machine, the slot table and the definition's validation."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core import events as ev
from orchestrator.core.commands import (
    AdmitExecution,
    CancelExecution,
    Command,
    CompleteStep,
    DeliverEvent,
    FireTimer,
    RefuseAdmission,
    StartExecution,
)
from orchestrator.core.machine import decide_and_evolve
from orchestrator.core.replay import verify_history
from orchestrator.core.state import ExecutionState, fold
from orchestrator.core.timefmt import rfc3339
from orchestrator.engine import snapshots
from orchestrator.engine.slot_table import Action, SlotTable
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph
from schemas.validation import DefinitionError, parse_definition

T0 = 1_767_225_600.0
EX = "limited-1"
STEPS = [
    {"name": "hold", "type": "wait_for_event", "event": "go", "next": "work"},
    {"name": "work", "type": "task", "connector": "noop"},
]


def graph(*limits: dict[str, Any], **fields: Any) -> WorkflowGraph:
    definition = {"name": "wf", "version": 1, "concurrency": list(limits), "steps": STEPS, **fields}
    return WorkflowGraph.build(parse_definition(definition))


def start(execution_id: str = EX, input: Any = None, now: float = T0) -> StartExecution:
    return StartExecution(execution_id=execution_id, now=now, workflow="wf", version=1, input=input)


def admit(now: float = T0 + 1, execution_id: str = EX) -> AdmitExecution:
    return AdmitExecution(execution_id=execution_id, now=now)


def go(now: float) -> DeliverEvent:
    return DeliverEvent(execution_id=EX, now=now, name="go")


def run(g: WorkflowGraph, commands: list[Command]) -> tuple[list[Envelope], ExecutionState]:
    """Decide each command and stamp its events as the engine does."""
    state: ExecutionState | None = None
    stamped: list[Envelope] = []
    for command in commands:
        events, state = decide_and_evolve(g, state, command)
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
    assert state is not None
    return stamped, state


def test_a_start_under_limits_waits_for_its_slots_before_its_first_step() -> None:
    g = graph({"key": "input.customer", "limit": 2}, {"limit": 10, "scope": "tenant"})
    events, state = decide_and_evolve(g, None, start(input={"customer": "acme"}))
    assert [e.type for e in events] == [ev.EXECUTION_STARTED, ev.EXECUTION_QUEUED]
    assert state is not None and not state.active and state.shown_status == "queued"
    slots = events[1].data["slots"]
    assert [(s["scope"], s["value"], s["limit"]) for s in slots] == [("workflow", "acme", 2), ("tenant", "all", 10)]
    assert slots[0]["key"] == '["workflow","default","wf","input.customer","acme"]'
    assert slots[1]["key"] == '["tenant","default","all"]'
    events, state = decide_and_evolve(g, state, admit())
    assert [e.type for e in events] == [ev.EXECUTION_ADMITTED, ev.EVENT_AWAITED]
    assert state is not None and state.held == tuple(s["key"] for s in slots) and state.shown_status == "running"
    assert decide_and_evolve(g, state, admit())[0] == []  # a second grant changes nothing


def test_release_while_waiting_gives_back_and_queues_again_on_waking() -> None:
    g = graph({"limit": 1, "release_while_waiting": True})
    history, state = run(g, [start(), admit()])
    assert [e.type for e in history][-2:] == [ev.EVENT_AWAITED, ev.SLOTS_RELEASED]
    assert state.held == () and state.shown_status == "running"
    events, state = decide_and_evolve(g, state, go(T0 + 2))
    assert [e.type for e in events] == [ev.EVENT_RECEIVED, ev.STEP_SUCCEEDED, ev.EXECUTION_QUEUED]
    assert state is not None and state.deferred == ("work",) and state.shown_status == "queued"
    events, state = decide_and_evolve(g, state, admit(T0 + 3))
    assert [e.type for e in events] == [ev.EXECUTION_ADMITTED, ev.STEP_SCHEDULED]
    assert state is not None and state.held


def test_a_grant_for_an_earlier_wait_redelivered_after_the_slots_went_back_admits_nothing() -> None:
    g = graph({"limit": 1, "release_while_waiting": True})
    first = AdmitExecution(execution_id=EX, now=T0 + 1, ticket=0)
    _, state = run(g, [start(), first])
    assert state.admissions == 1 and state.held == ()  # admitted once, then released while waiting
    _, state = decide_and_evolve(g, state, go(T0 + 2))
    assert state is not None and state.shown_status == "queued"
    events, state = decide_and_evolve(g, state, first)  # the old grant again (a redelivery)
    assert events == [] and state is not None and state.shown_status == "queued" and state.held == ()
    events, state = decide_and_evolve(g, state, AdmitExecution(execution_id=EX, now=T0 + 3, ticket=1))
    assert [e.type for e in events] == [ev.EXECUTION_ADMITTED, ev.STEP_SCHEDULED]
    assert state is not None and state.admissions == 2


def test_the_table_names_the_ticket_of_the_wait_it_grants() -> None:
    table = SlotTable()
    state = queued_state("x0", "c0", T0)
    table.sync(ExecutionState(**{**state.__dict__, "admissions": 3}), T0)
    assert [a.execution_id for a in table.decide(T0)] == ["x0"] and table.ticket("x0") == 3
    assert table.ticket("unknown") is None


def test_without_release_while_waiting_the_slot_is_kept_while_waiting() -> None:
    history, state = run(graph({"limit": 1}), [start(), admit()])
    assert ev.SLOTS_RELEASED not in [e.type for e in history] and state.held


def test_a_refusal_fails_a_queued_execution_and_the_end_gives_every_slot_back() -> None:
    g = graph({"limit": 1, "on_limit": "fail"})
    _, queued = run(g, [start()])
    events, state = decide_and_evolve(g, queued, RefuseAdmission(execution_id=EX, now=T0 + 1, reason="full"))
    assert [e.type for e in events] == [ev.EXECUTION_FAILED]
    assert state is not None and state.error == {"type": "concurrency.limit", "message": "full", "retryable": False}
    _, holding = run(g, [start(), admit()])
    events, state = decide_and_evolve(g, holding, CancelExecution(execution_id=EX, now=T0 + 2))
    assert state is not None and state.held == () and state.queued == ()


def test_histories_with_slots_verify_and_survive_a_snapshot() -> None:
    g = graph({"limit": 1, "release_while_waiting": True}, priority="input.p")
    commands: list[Command] = [start(input={"p": 3}), admit(), go(T0 + 2), admit(T0 + 3)]
    history, state = run(g, commands)
    attempt = state.active["work"].attempt_id
    done, state = run(g, [*commands, CompleteStep(execution_id=EX, now=T0 + 4, step="work", attempt_id=attempt)])
    assert verify_history(g, done) is None
    assert state.status == "succeeded" and state.priority == 3
    decoded, _, _ = snapshots.decode(snapshots.encode(fold(history) or state, None, ""))
    assert decoded == fold(history)
    refused = [*run(g, [start()])[0]]
    refused += run(g, [start(), RefuseAdmission(execution_id=EX, now=T0 + 1, reason="full")])[0][2:]
    assert verify_history(g, refused) is None


def test_a_history_without_slots_folds_as_before() -> None:
    plain = WorkflowGraph.build(parse_definition({"name": "wf", "version": 1, "steps": STEPS}))
    events, state = decide_and_evolve(plain, None, start())
    assert [e.type for e in events] == [ev.EXECUTION_STARTED, ev.EVENT_AWAITED]
    assert state is not None and state.slots == () and "slots" not in state.to_dict()


@pytest.mark.parametrize(
    ("fields", "location", "message"),
    [
        ({"concurrency": [{"limit": 0}]}, "concurrency[0].limit", "greater than or equal to 1"),
        ({"concurrency": [{"limit": 1, "on_limit": "drop"}]}, "concurrency[0].on_limit", "'queue'"),
        ({"concurrency": [{"limit": 1, "scope": "planet"}]}, "concurrency[0].scope", "'workflow'"),
        ({"concurrency": [{"key": "input.[", "limit": 1}]}, "concurrency[0].key", "input.["),
        ({"concurrency": [{"limit": 1}, {"limit": 2}]}, "concurrency[1].key", "as concurrency[0]"),
        ({"priority": "input.p"}, "priority", "needs a concurrency limit"),
        ({"concurrency": [{"limit": 1}], "priority": "input.("}, "priority", "input.("),
        ({"concurrency": [{"limit": 1, "release_while_waiting": "sometimes"}]}, "concurrency[0].release_while_waiting", "boolean"),
    ],
)
def test_every_field_is_validated_with_its_location(fields: dict[str, Any], location: str, message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition({"name": "wf", "steps": STEPS, **fields})
    assert any(p.location == location and message in p.message for p in caught.value.problems), caught.value


# -- the slot table -----------------------------------------------------------------------


def queued_state(execution_id: str, customer: str, at: float, priority: float = 0) -> ExecutionState:
    g = graph({"key": "input.c", "limit": 1}, {"limit": 2}, priority="input.p")
    _, state = decide_and_evolve(g, None, start(execution_id, {"c": customer, "p": priority}, at))
    assert state is not None
    return state


def test_the_table_serves_keys_round_robin_and_fifo_within_a_key() -> None:
    table = SlotTable()
    arrivals = [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("b2", "b"), ("c1", "c")]
    states = {eid: queued_state(eid, c, T0 + i) for i, (eid, c) in enumerate(arrivals)}
    for state in states.values():
        table.sync(state, T0)
    order: list[str] = []
    for _ in range(6):
        admitted = [a.execution_id for a in table.decide(T0) if a.kind == "admit"]
        order += admitted
        for eid in admitted:  # each admitted one runs and ends before the next round
            table.forget(eid)
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_a_decided_grant_counts_until_the_state_shows_it_and_can_be_undone() -> None:
    table = SlotTable()
    for i in range(3):
        table.sync(queued_state(f"x{i}", f"c{i}", T0 + i), T0)
    assert [a.execution_id for a in table.decide(T0)] == ["x0", "x1"]  # the overall cap is 2
    assert table.decide(T0) == []
    table.sync(queued_state("x0", "c0", T0), T0)  # a commit before the grant landed: still held
    assert table.decide(T0) == []
    table.undo(Action("admit", "x1"))  # its command could not be sent: it waits again
    assert "x1" in table.waiting and len(table.decide(T0)) == 1


@pytest.mark.parametrize("seed", range(5))
def test_random_starts_and_ends_never_pass_a_limit_and_everyone_gets_in(seed: int) -> None:
    import random

    rng = random.Random(seed)
    g = graph({"key": "input.c", "limit": 2}, {"limit": 5}, priority="input.p")
    table, running, states = SlotTable(), set[str](), {}
    started = 0
    for step in range(400):
        if started < 120 and rng.random() < 0.6:
            eid = f"x{started}"
            input = {"c": f"c{rng.randrange(6)}", "p": rng.choice([0, 0, 1, 3])}
            _, state = decide_and_evolve(g, None, start(eid, input, T0 + step))
            assert state is not None
            states[eid] = state
            table.sync(state, T0 + step)
            started += 1
        elif running:
            table.forget(rng.choice(sorted(running)))  # a holder ends
        for action in table.decide(T0 + step):
            assert action.kind == "admit"
            running.add(action.execution_id)
        running &= {e for info in table.keys.values() for e in info.holders}
        for key, info in table.keys.items():
            assert len(info.holders) <= int(info.slot["limit"]), key
    while running:
        table.forget(running.pop())
        running |= {a.execution_id for a in table.decide(T0 + 1000)}
    assert not table.waiting and started == 120


def test_a_table_folded_again_keeps_counting_a_grant_in_flight() -> None:
    old = SlotTable()
    states = [queued_state(f"x{i}", "c", T0 + i) for i in range(2)]
    for state in states:
        old.sync(state, T0)
    assert [a.execution_id for a in old.decide(T0)] == ["x0"]  # sent, not recorded yet
    again = SlotTable()
    for state in states:  # the log still shows both waiting
        again.sync(state, T0)
    again.carry(old, T0)
    assert again.decide(T0) == [] and "x0" in again.pending
    again.sync(states[0], T0)  # still queued in the log: the grant stays counted
    assert again.decide(T0) == []
    later = SlotTable()
    for state in states:
        later.sync(state, T0)
    later.carry(again, T0 + 61)  # never recorded in a minute: taken as lost, decided again
    assert [a.execution_id for a in later.decide(T0 + 61)] == ["x0"]


def test_a_throttled_start_under_limits_queues_for_its_slots_when_its_start_slot_comes() -> None:
    """A start rate and a concurrency limit together: first the start's slot in time (a start
    timer), then the concurrency slots (queued), and only then the first step."""
    g = graph({"limit": 1}, rate_limit={"key": "'all'", "limit": 1, "period": 60})
    throttled = StartExecution(execution_id=EX, now=T0, workflow="wf", version=1, input=None, not_before=T0 + 30)
    events, state = decide_and_evolve(g, None, throttled)
    assert [e.type for e in events] == [ev.EXECUTION_STARTED, ev.TIMER_SCHEDULED]
    assert not state.queued and state.visits.get("hold", 0) == 0
    events, state = decide_and_evolve(g, state, FireTimer(execution_id=EX, now=T0 + 30, timer_id="hold:0:start"))
    assert [e.type for e in events] == [ev.TIMER_FIRED, ev.EXECUTION_QUEUED]
    events, state = decide_and_evolve(g, state, admit(now=T0 + 31))
    assert ev.EXECUTION_ADMITTED in [e.type for e in events]
