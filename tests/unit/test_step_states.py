"""Step states for the console's graph, from a state answer."""

from __future__ import annotations

from orchestrator.api.step_states import step_states


def test_each_kind_of_step_gets_its_state() -> None:
    view = {
        "steps": {"a": {"x": 1}, "b": {"error": {"type": "Boom"}}},
        "active": {
            "c": {"kind": "task", "phase": "running"},
            "d": {"kind": "task", "phase": "retry_wait"},
            "e": {"kind": "wait_for_event", "phase": "running"},
            "f": {"kind": "wait", "phase": "running"},
        },
    }
    assert step_states(view) == {
        "a": "succeeded", "b": "failed", "c": "running", "d": "retrying", "e": "waiting", "f": "waiting",
    }  # fmt: skip
    assert step_states({}) == {}
