"""Start rate limits in definitions: starts past the rate are recorded at once and their first
step waits on a recorded timer for the start's slot (GCRA per key); other keys are untouched;
bad declarations are refused with named problems; the machine stays pure and replayable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.core.commands import FireTimer, StartExecution
from orchestrator.core.machine import decide_and_evolve
from orchestrator.limits.start_rate import StartRates
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.graph import WorkflowGraph
from schemas.validation import DefinitionError, parse_definition

LIMITED: dict[str, Any] = {
    "name": "limited",
    "rate_limit": {"key": "input.customer", "limit": 2, "period": "1s"},
    "steps": [{"name": "s", "type": "task", "connector": "noop"}],
}


def test_the_gcra_slots_allow_a_burst_then_space_the_starts() -> None:
    definition = parse_definition(LIMITED)
    rates = StartRates()
    slots = [rates.slot(definition, {"customer": "a"}, "default", 100.0) for _ in range(5)]
    assert slots == [None, None, 100.5, 101.0, 101.5]
    assert rates.slot(definition, {"customer": "b"}, "default", 100.0) is None  # another key
    assert rates.slot(definition, {"customer": "a"}, "other", 100.0) is None  # another tenant
    assert rates.slot(parse_definition({**LIMITED, "rate_limit": None}), {}, "default", 100.0) is None


def test_the_machine_records_a_delayed_start_and_runs_it_at_its_slot() -> None:
    graph = WorkflowGraph.build(parse_definition(LIMITED).with_version(1))
    start = StartExecution(execution_id="e", now=10.0, workflow="limited", version=1, not_before=12.0)
    events, state = decide_and_evolve(graph, None, start)
    assert [e.type for e in events] == ["ExecutionStarted", "TimerScheduled"]
    assert events[0].data["not_before"] == 12.0 and events[1].data["purpose"] == "start"
    assert events[1].data["due"] == 12.0
    fired, after = decide_and_evolve(
        graph, state, FireTimer(execution_id="e", now=12.0, timer_id="s:0:start")
    )
    assert [e.type for e in fired] == ["TimerFired", "StepScheduled"]
    assert after is not None and after.active["s"].kind == "task"
    on_time = StartExecution(execution_id="f", now=10.0, workflow="limited", version=1, not_before=10.0)
    assert [e.type for e in decide_and_evolve(graph, None, on_time)[0]] == [
        "ExecutionStarted",
        "StepScheduled",
    ]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_starts_past_the_rate_are_delayed_not_dropped(tmp_path: Path, backend: str) -> None:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'log.db'}"
    async with Runtime(Settings(auth=False, event_log_url=url)) as runtime:
        await runtime.register(
            parse_definition({**LIMITED, "rate_limit": {"key": "input.customer", "limit": 1, "period": 0.4}})
        )
        began = runtime.clock()
        started = [await runtime.start_execution("limited", {"customer": "a"}) for _ in range(3)]
        other = await runtime.start_execution("limited", {"customer": "b"})
        finals = [await runtime.wait(s.execution_id, 10) for s in (*started, other)]
        assert all(final.status == "succeeded" for final in finals)
        histories = [await runtime.history(s.execution_id) for s in started]
        assert [e.type for e in histories[0]][:2] == ["ExecutionStarted", "StepScheduled"]
        for index in (1, 2):
            timer = histories[index][1]
            assert timer.type == "TimerScheduled" and timer.data["purpose"] == "start"
            assert timer.data["due"] == pytest.approx(began + 0.4 * index, abs=0.2)
        assert [e.type for e in await runtime.history(other.execution_id)][1] == "StepScheduled"


@pytest.mark.parametrize(
    ("rate_limit", "where"),
    [
        ({"key": "input.[", "limit": 1, "period": 1}, "rate_limit.key"),
        ({"key": "input.a", "limit": 1, "period": "soon"}, "rate_limit.period"),
        ({"key": "input.a", "limit": 1, "period": 0}, "rate_limit.period"),
        ({"key": "input.a", "limit": 0, "period": 1}, "rate_limit.limit"),
        ({"key": "input.a", "limit": 1, "period": 1, "burst": 3}, "rate_limit.burst"),
    ],
)
def test_bad_rate_limits_are_refused_by_name(rate_limit: dict[str, Any], where: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        parse_definition({**LIMITED, "rate_limit": rate_limit})
    assert where in str(refused.value)
