"""Step functions for the crash-recovery test: slow, optionally flaky, and counting real runs.

Each completed run appends ``<idempotency key> <attempt>`` to ``runs_file``, so the test can see
which steps ran more than once (at-least-once execution across a crash).
"""

from __future__ import annotations

import time
from typing import Any

from connectors.base import StepCall


def slow_step(
    seconds: float, runs_file: str, idempotency_key: str, call: StepCall, fail_first: bool = False
) -> dict[str, Any]:
    """Sleep, then record the run; with ``fail_first`` the first attempt fails after sleeping."""
    time.sleep(seconds)
    if fail_first and call.attempt == 1:
        raise ConnectionError("flaky dependency (simulated)")
    with open(runs_file, "a", encoding="utf-8") as runs:
        runs.write(f"{idempotency_key} {call.attempt}\n")
    return {"step": call.step, "attempt": call.attempt}
