"""Golden histories: recorded once by tests/golden/record.py, replayed on every run.

A clean history that stops verifying means the machine now decides differently for executions
already in flight: a breaking change that needs a new definition version or a migration, not
a re-recording. The divergent history must keep being reported, at the sequence found by hand.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.core import events as ev
from orchestrator.core.commands import (
    Command,
    CompleteStep,
    ErrorInfo,
    FailStep,
    FireTimer,
    StartExecution,
)
from orchestrator.core.machine import decide_and_evolve
from orchestrator.core.replay import replay_state, verify_history
from orchestrator.core.state import ExecutionState, evolve, fold, replaced
from orchestrator.core.timefmt import parse_rfc3339, rfc3339
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph
from schemas.validation import parse_definition

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FILES = sorted(GOLDEN.glob("*.json"))
CLEAN = [f for f in FILES if json.loads(f.read_text())["expect"]["divergence"] is None]
DIVERGENT = [f for f in FILES if f not in CLEAN]


def load(path: Path) -> tuple[dict[str, Any], WorkflowGraph, list[Envelope]]:
    content = json.loads(path.read_text(encoding="utf-8"))
    graph = WorkflowGraph.build(parse_definition(content["definition"]))
    envelopes = [Envelope.from_cloudevent(event) for event in content["events"]]
    return content, graph, envelopes


def test_the_golden_set_is_complete() -> None:
    names = {f.stem for f in FILES}
    assert {
        "order_parallel_retry",
        "approval_event_timeout",
        "poll_choice_loop",
        "subworkflow_parent",
    } <= names
    assert len(CLEAN) >= 4
    assert [f.stem for f in DIVERGENT] == ["order_reordered_divergent"]


@pytest.mark.parametrize("path", CLEAN, ids=lambda p: p.stem)
def test_clean_history_verifies(path: Path) -> None:
    content, graph, envelopes = load(path)
    assert len(envelopes) == content["expect"]["events"]
    assert verify_history(graph, envelopes) is None
    state = replay_state(envelopes)
    assert envelopes[-1].type == content["expect"]["final_event"]
    assert state.status == ev.STATUS_BY_TERMINAL_TYPE[envelopes[-1].type]
    assert state.sequence == len(envelopes)
    assert state.active == {} and state.timers == {}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_history_is_a_well_formed_stamped_stream(path: Path) -> None:
    _, graph, envelopes = load(path)
    assert [e.sequence for e in envelopes] == list(range(1, len(envelopes) + 1))
    assert len({e.id for e in envelopes}) == len(envelopes)
    assert {e.subject for e in envelopes} == {envelopes[0].data["execution_id"]}
    assert {(e.workflow, e.workflowversion) for e in envelopes} == {(graph.definition.name, 1)}
    times = [parse_rfc3339(e.time) for e in envelopes]
    assert times == sorted(times)
    assert all(e.type in ev.ALL_TYPES for e in envelopes)
    # the bytes written to the log read back as the same envelope
    assert all(Envelope.from_bytes(e.to_bytes()) == e for e in envelopes)


@pytest.mark.parametrize("path", CLEAN, ids=lambda p: p.stem)
def test_replay_state_at_every_sequence_is_the_fold_of_the_prefix(path: Path) -> None:
    _, _, envelopes = load(path)
    for n in range(1, len(envelopes) + 1):
        assert replay_state(envelopes, at_sequence=n) == fold(envelopes[:n])


def test_divergent_history_is_reported_where_the_edit_changed_a_decision() -> None:
    content, graph, envelopes = load(GOLDEN / "order_reordered_divergent.json")
    expect = content["expect"]["divergence"]
    divergence = verify_history(graph, envelopes)
    assert divergence is not None
    assert divergence.sequence == expect["sequence"]
    assert divergence.recorded is not None and divergence.recorded.type == expect["recorded_type"]
    assert divergence.expected is not None and divergence.expected.type == expect["expected_type"]
    assert divergence.expected.data["step"] == expect["expected_step"]
    assert "ParallelStarted" in divergence.reason and "StepScheduled" in divergence.reason
    # the same events verify against the definition they were recorded with
    _, original, _ = load(GOLDEN / "order_parallel_retry.json")
    assert verify_history(original, envelopes) is None


def test_order_history_covers_retry_timeout_and_join_in_branch_order() -> None:
    _, _, envelopes = load(GOLDEN / "order_parallel_retry.json")
    by_type = [(e.type, e.data.get("step")) for e in envelopes]
    assert (ev.TIMER_FIRED, "reserve") in by_type and (ev.TIMER_FIRED, "ship") in by_type
    joined = next(
        e for e in envelopes if e.type == ev.STEP_SUCCEEDED and e.data["step"] == "fulfil"
    )
    assert joined.data["output"] == ["R-9", {"charge_id": "ch_1"}]  # branch order, not arrival
    retry = next(e for e in envelopes if e.type == ev.STEP_FAILED and e.data["step"] == "reserve")
    delay = retry.data["retry"]["due"] - parse_rfc3339(retry.time)
    assert 1.0 <= delay <= 2.0  # initial 2 s, jitter 0.5


def test_hold_history_reads_a_naive_until_as_utc() -> None:
    _, _, envelopes = load(GOLDEN / "hold_cancelled.json")
    scheduled = next(e for e in envelopes if e.type == ev.TIMER_SCHEDULED)
    assert scheduled.data["due"] == datetime(2026, 1, 2, 9, 30, tzinfo=UTC).timestamp()
    assert envelopes[-1].type == ev.EXECUTION_CANCELLED and envelopes[-1].actor == "carol"


def test_a_tampered_golden_history_is_divergent() -> None:
    """Change one recorded output: the decision that read it no longer matches."""
    _, graph, envelopes = load(GOLDEN / "poll_choice_loop.json")
    index = next(i for i, e in enumerate(envelopes) if e.type == ev.CHOICE_MADE)
    choice = envelopes[index]
    tampered = Envelope(**{**_fields(choice), "data": {**choice.data, "next": "give_up"}})
    divergence = verify_history(graph, [*envelopes[:index], tampered, *envelopes[index + 1 :]])
    assert divergence is not None and divergence.sequence == choice.sequence
    assert "'next'" in divergence.reason


def _fields(envelope: Envelope) -> dict[str, Any]:
    return {f.name: getattr(envelope, f.name) for f in dataclasses.fields(envelope) if f.init}


# -- verify_history on hand-made histories ------------------------------------------------------

T0 = 1_767_225_600.0


def record(graph: WorkflowGraph, commands: list[Command]) -> list[Envelope]:
    """Decide each command in turn and stamp its events as the engine does."""
    state: ExecutionState | None = None
    stamped: list[Envelope] = []
    for command in commands:
        events, after = decide_and_evolve(graph, state, command)
        stamped += [
            Envelope(
                id=f"e{len(stamped) + i}",
                type=e.type,
                subject="ex",
                sequence=len(stamped) + i,
                time=rfc3339(command.now),
                workflow="wf",
                workflowversion=1,
                data=e.data,
            )
            for i, e in enumerate(events, start=1)
        ]
        state = after
    return stamped


def renumber(envelopes: list[Envelope]) -> list[Envelope]:
    return [dataclasses.replace(e, sequence=i) for i, e in enumerate(envelopes, start=1)]


GRAPH = WorkflowGraph.build(
    parse_definition(
        {
            "name": "wf",
            "version": 1,
            "steps": [
                {
                    "name": "a",
                    "type": "task",
                    "connector": "c",
                    "output": "result.id",
                    "timeout_seconds": 10,
                    "retry": {"max_attempts": 2, "jitter": 0.5},
                    "next": "b",
                },
                {"name": "b", "type": "task", "connector": "c"},
            ],
        }
    )
)


def history(now: float = T0) -> list[Envelope]:
    base: dict[str, Any] = {"execution_id": "ex"}
    return record(
        GRAPH,
        [
            StartExecution(**base, now=now, workflow="wf", version=1, input={"n": 1}),
            FailStep(**base, now=now + 1, step="a", attempt_id="a:1:1", error=ErrorInfo("boom")),
            FireTimer(**base, now=now + 3, timer_id="a:1:1:retry"),
            CompleteStep(**base, now=now + 4, step="a", attempt_id="a:1:2", output={"id": 7}),
            CompleteStep(**base, now=now + 5, step="b", attempt_id="b:1:1", output="done"),
        ],
    )


def test_a_hand_made_history_verifies_and_its_output_mapping_is_trusted() -> None:
    envelopes = history()
    assert [e.type for e in envelopes][-2:] == [ev.STEP_SUCCEEDED, ev.EXECUTION_SUCCEEDED]
    mapped = next(e for e in envelopes if e.type == ev.STEP_SUCCEEDED)
    assert mapped.data == {"step": "a", "attempt_id": "a:1:2", "output": 7}  # after result.id
    assert verify_history(GRAPH, envelopes) is None
    assert replay_state(envelopes).output == "done"
    assert verify_history(GRAPH, []) is None


def test_a_clock_finer_than_microseconds_still_verifies() -> None:
    """The envelope keeps microseconds; due times decided from a finer clock differ by less."""
    envelopes = history(now=T0 + 0.123456789)
    assert parse_rfc3339(envelopes[0].time) != T0 + 0.123456789
    assert verify_history(GRAPH, envelopes) is None


@pytest.mark.parametrize(("shift", "verifies"), [(4e-7, True), (1e-3, False)])
def test_due_times_are_compared_to_the_microsecond(shift: float, verifies: bool) -> None:
    envelopes = history()
    index = next(i for i, e in enumerate(envelopes) if e.type == ev.STEP_FAILED)
    failed = envelopes[index]
    retry = {**failed.data["retry"], "due": failed.data["retry"]["due"] + shift}
    envelopes[index] = dataclasses.replace(failed, data={**failed.data, "retry": retry})
    divergence = verify_history(GRAPH, envelopes)
    assert (divergence is None) is verifies
    if divergence is not None:
        assert divergence.sequence == failed.sequence and "['retry']['due']" in divergence.reason


def test_a_gap_in_the_sequence_is_reported() -> None:
    envelopes = history()
    del envelopes[3]
    divergence = verify_history(GRAPH, envelopes)
    assert divergence is not None and divergence.sequence == 5
    assert divergence.reason == "sequence 5 where 4 was expected"
    assert str(divergence) == "diverged at sequence 5: sequence 5 where 4 was expected"


def test_a_history_must_start_with_execution_started() -> None:
    divergence = verify_history(GRAPH, renumber(history()[1:]))
    assert divergence is not None and divergence.sequence == 1
    assert "must begin with ExecutionStarted" in divergence.reason


def test_a_history_cut_inside_a_decision_is_reported_after_its_end() -> None:
    envelopes = history()[:-1]
    divergence = verify_history(GRAPH, envelopes)
    assert divergence is not None and divergence.sequence == len(envelopes) + 1
    assert divergence.recorded is None and divergence.expected is not None
    assert divergence.expected.type == ev.EXECUTION_SUCCEEDED


def test_events_the_machine_no_longer_decides_are_reported() -> None:
    envelopes = history()
    extra = dataclasses.replace(envelopes[1], sequence=len(envelopes) + 1)  # a second StepScheduled
    divergence = verify_history(GRAPH, [*envelopes, extra])
    assert divergence is not None and divergence.sequence == extra.sequence
    assert divergence.expected is None and "decides no more events here" in divergence.reason


def test_a_recorded_answer_the_machine_now_ignores_is_reported() -> None:
    envelopes = history()
    answered = next(e for e in envelopes if e.type == ev.STEP_SUCCEEDED)  # a:1:2, completed
    middle = len(envelopes) - 2  # before b's answer: a's answer again
    divergence = verify_history(
        GRAPH, renumber([*envelopes[:middle], answered, *envelopes[middle:]])
    )
    assert divergence is not None and divergence.sequence == middle + 1
    assert "ignores" in divergence.reason


def test_a_history_the_current_definition_cannot_take_is_reported_not_raised() -> None:
    other = WorkflowGraph.build(
        parse_definition(
            {
                "name": "wf",
                "steps": [
                    {"name": "z", "type": "task", "connector": "c"},
                ],
            }
        )
    )
    divergence = verify_history(other, history())
    assert divergence is not None and divergence.sequence == 2
    assert divergence.expected is not None and divergence.expected.data["step"] == "z"


def test_limited_history_records_each_grant_once_and_the_release_while_waiting() -> None:
    _, _, envelopes = load(GOLDEN / "limited_release_while_waiting.json")
    types = [e.type for e in envelopes]
    assert types.count(ev.EXECUTION_QUEUED) == 2 and types.count(ev.EXECUTION_ADMITTED) == 2
    assert types.index(ev.SLOTS_RELEASED) == types.index(ev.EVENT_AWAITED) + 1
    state = replay_state(envelopes, at_sequence=types.index(ev.SLOTS_RELEASED) + 1)
    overall = json.dumps(["workflow", "default", "limited", "'all'", "all"], separators=(",", ":"))
    assert state.held == (overall,) and state.priority == 2  # the customer's slot was given back


STATE_FIELDS = {f.name for f in dataclasses.fields(ExecutionState)}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_folded_state_holds_exactly_the_state_fields(path: Path) -> None:
    """The fold copies a state's fields and updates them with each handler's changes: a handler
    returning a key that is no field would add a stray attribute, which this finds."""
    _, _, envelopes = load(path)
    state = None
    for envelope in envelopes:
        state = evolve(state, envelope)
        assert set(vars(state)) == STATE_FIELDS, envelope.type


def test_a_change_that_is_no_field_is_found() -> None:
    _, _, envelopes = load(FILES[0])
    state = evolve(None, envelopes[0])
    assert set(vars(replaced(state, {"sequence": 2, "stray": 1}))) != STATE_FIELDS


def test_the_debounced_history_runs_once_with_the_last_input() -> None:
    envelopes = load(GOLDEN / "debounced_last_input.json")[2]
    types = [e.type for e in envelopes]
    assert types.count(ev.START_DEBOUNCED) == 2 and types.count(ev.STEP_SCHEDULED) == 1
    scheduled = next(e for e in envelopes if e.type == ev.STEP_SCHEDULED)
    assert scheduled.data["args"] == {"rev": 3}
    quiet = replay_state(envelopes, at_sequence=types.index(ev.TIMER_FIRED))
    assert quiet.debouncing and quiet.input == {"customer": "acme", "rev": 3}
