"""The fold's fast copy of a state equals ``dataclasses.replace`` and stays valid for the class."""

from __future__ import annotations

import dataclasses

from orchestrator.core.state import ExecutionState, Timer, replaced


def test_replaced_equals_dataclasses_replace() -> None:
    state = ExecutionState(execution_id="x", workflow="w", version=1, tenant="t", input={"n": 1}, sequence=1)
    changes = {"sequence": 2, "timers": {"t": Timer("t", "a", 5.0, "retry")}, "last_step": "a"}
    copied = replaced(state, dict(changes))
    assert copied == dataclasses.replace(state, **changes)
    assert copied.input is state.input and state.sequence == 1  # a shallow copy; the original stands


def test_the_fast_copy_still_fits_the_class() -> None:
    """It fills slots directly, which is only right while every field is a plain init field."""
    assert not hasattr(ExecutionState, "__post_init__")
    assert all(f.init for f in dataclasses.fields(ExecutionState))
