"""Properties of the machine over random workflows and random worlds (hypothesis).

A scenario is a random workflow (tasks with retry policies and timeouts, choices, waits,
parallels, event waits, subworkflows) plus a random list of choices that pick what the world
does next: a worker succeeds or fails, a timer fires, an event or a stray signal arrives, a child
finishes, an old command is delivered again, the execution is cancelled. When the choices run
out, the world cooperates until the execution finishes. Every command goes through
``decide_and_evolve`` and its events are stamped like the engine stamps them.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    StartExecution,
)
from orchestrator.core.events import Event
from orchestrator.core.machine import CommandRejected, decide, decide_and_evolve
from orchestrator.core.replay import replay_state, verify_history
from orchestrator.core.state import ExecutionState, evolve, fold
from orchestrator.core.timefmt import rfc3339
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph
from schemas.validation import parse_definition

T0 = 1_767_225_600.0
EX = "prop-1"
ERRORS = ["http.503", "http.400", "auth.denied", "timeout"]
FAST = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# -- random workflows ---------------------------------------------------------------------------


def _retry(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "max_attempts": draw(st.sampled_from([1, 2, 3, 3])),
        "jitter": draw(st.sampled_from([0.0, 0.5])),
        "retry_on": draw(st.sampled_from([None, ["http.5*", "timeout"], ["*"]])),
        "non_retryable": draw(st.sampled_from([[], ["auth.*"]])),
        "backoff": {"initial_seconds": draw(st.sampled_from([0.5, 2.0])), "multiplier": 2},
    }


def _task(draw: st.DrawFn, name: str, next_: str | None, on_error: str | None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "name": name,
        "type": "task",
        "connector": "noop",
        "input": {"k": "input.key"},
        "retry": _retry(draw),
        "output": draw(st.sampled_from([None, "result.v", "abs(result.v)"])),  # the last may fail
        "timeout_seconds": draw(st.sampled_from([None, 10])),
    }
    if next_:
        step["next"] = next_
    if on_error:
        step["on_error"] = on_error
    return step


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 5))
    names = [f"s{i}" for i in range(count)] + ["end"]
    steps: list[dict[str, Any]] = []
    for i in range(count):
        name, following, later = names[i], names[i + 1], names[i + 1 :]
        catch = draw(st.sampled_from([None, *later[1:]]))
        kind = draw(
            st.sampled_from(["task", "task", "choice", "wait", "parallel", "event", "child"])
        )
        if kind == "task":
            steps.append(_task(draw, name, following, catch))
        elif kind == "choice":
            rule = {"when": f"input.flags[{i}]", "next": draw(st.sampled_from(later))}
            steps.append({"name": name, "type": "choice", "choices": [rule], "default": following})
        elif kind == "wait":
            steps.append(
                {
                    "name": name,
                    "type": "wait",
                    "seconds": draw(st.sampled_from([0, 5])),
                    "next": following,
                }
            )
        elif kind == "parallel":
            branches = []
            for b in range(draw(st.integers(1, 3))):
                size = draw(st.integers(1, 2))
                tasks = [f"{name}b{b}t{t}" for t in range(size)]
                chain = [
                    _task(draw, t, tasks[j + 1] if j + 1 < size else None, None)
                    for j, t in enumerate(tasks)
                ]
                branches.append({"steps": chain})
            step: dict[str, Any] = {
                "name": name,
                "type": "parallel",
                "branches": branches,
                "next": following,
            }
            steps.append({**step, "on_error": catch} if catch else step)
        elif kind == "event":
            timeout = draw(st.sampled_from([None, 60]))
            step = {
                "name": name,
                "type": "wait_for_event",
                "event": draw(st.sampled_from(["go", "stop"])),
                "correlation_key": draw(st.sampled_from([None, "input.key"])),
                "next": following,
            }
            if timeout:
                step.update(timeout_seconds=timeout, on_timeout=draw(st.sampled_from(later)))
            steps.append(step)
        else:
            step = {
                "name": name,
                "type": "subworkflow",
                "workflow": "child",
                "input": {"k": "input.key"},
                "next": following,
            }
            steps.append({**step, "on_error": catch} if catch else step)
    steps.append(
        draw(
            st.sampled_from(
                [
                    {"name": "end", "type": "succeed", "output": "steps"},
                    {"name": "end", "type": "fail", "error": "End", "cause": "'the end'"},
                ]
            )
        )
    )
    return {"name": "wf", "version": 1, "steps": steps}


scenarios = st.tuples(
    workflows(),
    st.lists(st.booleans(), min_size=5, max_size=5),
    st.lists(st.integers(0, 10_000), min_size=3, max_size=40),
)

# -- driving ------------------------------------------------------------------------------------


@dataclass
class Drive:
    graph: WorkflowGraph
    state: ExecutionState | None = None
    now: float = T0
    sent: list[Command] = field(default_factory=list)
    batches: list[list[Event]] = field(default_factory=list)
    states: list[ExecutionState] = field(default_factory=list)  # the state after each batch
    envelopes: list[Envelope] = field(default_factory=list)

    @property
    def s(self) -> ExecutionState:
        assert self.state is not None
        return self.state

    def send(self, command: Command) -> None:
        command = dataclasses.replace(command, now=self.now, command_id=f"c{len(self.sent)}")
        self.sent.append(command)
        events, after = decide_and_evolve(self.graph, self.state, command)
        if not events:
            return
        assert after is not None
        first = self.state.sequence + 1 if self.state else 1
        self.envelopes += [
            Envelope(
                id=f"e{first + i}",
                type=e.type,
                subject=EX,
                sequence=first + i,
                time=rfc3339(self.now),
                workflow="wf",
                workflowversion=1,
                data=e.data,
                causationid=command.command_id,
            )
            for i, e in enumerate(events)
        ]
        self.state = after
        self.batches.append(events)
        self.states.append(after)

    def tick(self, seconds: float = 0.25) -> None:
        self.now = round(self.now + seconds, 6)

    def at_least(self, due: float) -> None:
        self.now = max(self.now, math.ceil(due * 1e6) / 1e6)

    def options(self, pick: int, *, surprises: bool = True) -> list[Command]:
        """What the world could do now; ``pick`` varies outputs and errors."""
        base: dict[str, Any] = {"execution_id": EX, "now": self.now}
        found: list[Command] = []
        for name, active in sorted(self.s.active.items()):
            if active.kind == "task" and active.phase == "running":
                attempt: dict[str, Any] = {"step": name, "attempt_id": active.attempt_id}
                error = ErrorInfo(ERRORS[pick % len(ERRORS)], "m", pick % 2 == 0)
                found += [
                    CompleteStep(**base, **attempt, output={"v": pick % 7}),
                    CompleteStep(**base, **attempt, output={"v": "text"}),
                    FailStep(**base, **attempt, error=error),
                ]
            elif active.kind == "wait_for_event":
                event = active.event or ""
                found += [
                    DeliverEvent(
                        **base,
                        name=event,
                        payload={"n": pick},
                        correlation_key=active.correlation_key,
                    ),
                    DeliverEvent(
                        **base, name=event, payload={"n": pick}, correlation_key="other-key"
                    ),
                    DeliverEvent(**base, name=event, payload={"n": pick}),
                ]
            elif active.kind == "subworkflow" and active.child_id:
                found += [
                    ChildFinished(
                        **base, child_id=active.child_id, status="succeeded", output={"c": pick}
                    ),
                    ChildFinished(
                        **base,
                        child_id=active.child_id,
                        status="failed",
                        error={"type": "child.boom", "message": "x"},
                    ),
                ]
        found += [FireTimer(**base, timer_id=timer_id) for timer_id in sorted(self.s.timers)]
        if not surprises:
            return found
        found.append(DeliverEvent(**base, name="go", payload="stray"))  # buffered if nobody waits
        answers = self.sent[1:]  # not the start: a duplicate start is refused (ExecutionExists)
        if answers:
            found.append(answers[pick % len(answers)])  # a redelivery of an old command
        if pick % 13 == 0:
            found.append(CancelExecution(**base, reason="random"))
        return found

    def act(self, command: Command) -> None:
        if isinstance(command, FireTimer) and command.timer_id in self.s.timers:
            self.at_least(self.s.timers[command.timer_id].due)
        self.send(command)
        self.tick()

    def cooperate(self) -> Command:
        """The world doing the expected thing: answers succeed, events arrive, timers fire."""
        for option in self.options(1, surprises=False):
            if isinstance(option, CompleteStep) and option.output == {"v": 1}:
                return option
            if isinstance(option, DeliverEvent) and option.correlation_key != "other-key":
                return option
            if isinstance(option, ChildFinished) and option.status == "succeeded":
                return option
        due = min(self.s.timers.values(), key=lambda t: (t.due, t.timer_id))
        return FireTimer(execution_id=EX, now=self.now, timer_id=due.timer_id)


def drive(definition: dict[str, Any], flags: list[bool], picks: list[int]) -> Drive:
    world = Drive(WorkflowGraph.build(parse_definition(definition)))
    world.send(
        StartExecution(
            execution_id=EX, now=T0, workflow="wf", version=1, input={"flags": flags, "key": "k-1"}
        )
    )
    for pick in picks:
        if world.s.terminal:
            break
        options = world.options(pick)
        world.act(options[pick % len(options)])
    for _ in range(500):
        if world.s.terminal:
            break
        world.act(world.cooperate())
    assert world.s.terminal, world.s.to_dict()
    return world


def flat(world: Drive) -> list[Event]:
    return [event for batch in world.batches for event in batch]


# -- properties ---------------------------------------------------------------------------------


@FAST
@given(scenarios, st.data())
def test_folding_in_pieces_equals_folding_at_once(scenario: Any, data: st.DataObject) -> None:
    world = drive(*scenario)
    events = flat(world)
    whole = fold(events)
    assert whole == world.state
    split = data.draw(st.integers(1, len(events)))
    assert fold(events[split:], fold(events[:split])) == whole
    one_by_one: ExecutionState | None = None
    for event in events:
        one_by_one = evolve(one_by_one, event)
    assert one_by_one == whole


@FAST
@given(scenarios)
def test_replaying_a_recorded_history_reproduces_every_state(scenario: Any) -> None:
    world = drive(*scenario)
    assert replay_state(world.envelopes) == world.state
    sequence = 0
    for batch, state in zip(world.batches, world.states, strict=True):
        sequence += len(batch)
        assert replay_state(world.envelopes, at_sequence=sequence) == state
    assert replay_state(Envelope.from_bytes(e.to_bytes()) for e in world.envelopes) == world.state


@FAST
@given(scenarios)
def test_every_recorded_history_verifies(scenario: Any) -> None:
    world = drive(*scenario)
    assert verify_history(world.graph, world.envelopes) is None
    # also after the round trip through bytes that the event log makes
    assert (
        verify_history(world.graph, [Envelope.from_bytes(e.to_bytes()) for e in world.envelopes])
        is None
    )


@FAST
@given(scenarios, st.data())
def test_a_changed_event_inside_a_decision_is_reported_where_it_changed(
    scenario: Any, data: st.DataObject
) -> None:
    world = drive(*scenario)
    positions: list[int] = []
    sequence = 0
    for batch in world.batches:  # events decided after the first one of their decision
        positions += range(sequence + 1, sequence + len(batch))
        sequence += len(batch)
    if not positions:
        return
    index = data.draw(st.sampled_from(positions))
    original = world.envelopes[index]
    tampered = dataclasses.replace(original, data={**original.data, "tampered": True})
    history = [*world.envelopes[:index], tampered, *world.envelopes[index + 1 :]]
    divergence = verify_history(world.graph, history)
    assert divergence is not None and divergence.sequence == original.sequence
    assert divergence.expected == Event(original.type, original.data)
    assert "tampered" in divergence.reason


@FAST
@given(scenarios)
def test_each_attempt_completes_at_most_once(scenario: Any) -> None:
    world = drive(*scenario)
    events = flat(world)
    scheduled = [e.data["attempt_id"] for e in events if e.type == ev.STEP_SCHEDULED]
    assert len(scheduled) == len(set(scheduled))
    answered = Counter(
        e.data["attempt_id"]
        for e in events
        if e.type in (ev.STEP_SUCCEEDED, ev.STEP_FAILED) and "attempt_id" in e.data
    )
    assert all(count == 1 for count in answered.values()), answered
    assert set(answered) <= set(scheduled)
    children = Counter(
        e.data["child_id"] for e in events if "child_id" in e.data and e.type != ev.CHILD_STARTED
    )
    assert all(count == 1 for count in children.values())


@FAST
@given(scenarios)
def test_stamped_sequences_are_gap_free_and_end_with_one_terminal_event(scenario: Any) -> None:
    world = drive(*scenario)
    assert [e.sequence for e in world.envelopes] == list(range(1, len(world.envelopes) + 1))
    assert world.s.sequence == len(world.envelopes)
    terminal = [i for i, e in enumerate(world.envelopes) if e.type in ev.TERMINAL_TYPES]
    assert terminal == [len(world.envelopes) - 1]


@FAST
@given(scenarios)
def test_a_finished_execution_ignores_or_rejects_every_later_command(scenario: Any) -> None:
    world = drive(*scenario)
    for command in world.sent:
        try:
            assert decide(world.graph, world.state, command) == []
        except CommandRejected:
            assert isinstance(command, CancelExecution | DeliverEvent | StartExecution)


@settings(max_examples=25, deadline=None, database=None)
@given(scenarios)
def test_the_same_world_gives_the_same_history(scenario: Any) -> None:
    assert drive(*scenario).envelopes == drive(*scenario).envelopes
