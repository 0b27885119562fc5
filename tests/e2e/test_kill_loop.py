"""The kill loop (tests/e2e/kill_loop.py): SIGKILL a real ``orchestrator serve`` on SQLite at
random moments under webhooks with delivery ids, retries, timers and event waits; no accepted
start is lost and every step completes exactly once. ``ORCHESTRATOR_KILL_LOOP_ROUNDS`` (default
10; 100 for a soak) and ``ORCHESTRATOR_KILL_LOOP_SEED`` (printed) steer it."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.e2e.kill_loop import ROUNDS, SEED, STEPS, problems, run_kill_loop, summary


def test_the_history_check_catches_a_duplicated_completion_and_a_gap() -> None:
    def event(sequence: int, type_: str, step: str | None = None) -> dict[str, Any]:
        return {"sequence": sequence, "type": f"io.orchestrator.{type_}", "data": {"step": step}}

    good = [event(1, "ExecutionStarted")]
    good += [event(i, "StepSucceeded", step) for i, step in enumerate(STEPS, start=2)]
    good.append(event(len(good) + 1, "ExecutionSucceeded"))
    assert problems(good) == []
    twice = [*good[:2], event(3, "StepSucceeded", "first"), *(dict(e, sequence=e["sequence"] + 1) for e in good[2:])]
    assert problems(twice) == ["step completions {'first': 2, 'pause': 1, 'gate': 1, 'last': 1, 'done': 1}, not one per step"]
    assert problems([*good[:3], *good[4:]]) == [
        "sequences have gaps or repeats",
        f"step completions {dict(Counter(STEPS) - Counter(['gate']))}, not one per step",
    ]


async def test_sigkill_under_load_loses_no_start_and_completes_every_step_once(tmp_path: Path) -> None:
    began = time.monotonic()
    print(f"kill loop: {ROUNDS} rounds, seed {SEED} (ORCHESTRATOR_KILL_LOOP_SEED={SEED} replays it)")
    world = await run_kill_loop(tmp_path, ROUNDS, SEED)
    print(summary(world, ROUNDS, time.monotonic() - began))
    assert len(world.accepted) >= ROUNDS  # every round got some load in before its kill
