"""Each step's state in an execution answer, kept when payloads are redacted (it holds none):
``succeeded``, ``failed``, ``running``, ``retrying`` or ``waiting``; a step not named has not
started (``pending``). A console colours its graph with it."""

from __future__ import annotations

from typing import Any

WAITING_KINDS = frozenset({"wait", "wait_for_event"})


def step_states(view: dict[str, Any]) -> dict[str, str]:
    """From a state's ``to_dict()`` (before redaction): finished steps by their output, then the
    active ones by their phase and kind."""
    states: dict[str, str] = {}
    for name, output in (view.get("steps") or {}).items():
        states[name] = "failed" if isinstance(output, dict) and set(output) == {"error"} else "succeeded"
    for name, active in (view.get("active") or {}).items():
        if active.get("phase") == "retry_wait":
            states[name] = "retrying"
        elif active.get("kind") in WAITING_KINDS:
            states[name] = "waiting"
        else:
            states[name] = "running"
    return states
