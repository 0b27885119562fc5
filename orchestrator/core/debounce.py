"""Where a debounced start waits: its entry in the wait index, so a later start finds it.

An execution in its quiet period (``ExecutionState.debouncing``) is listed in the wait index under
``(DEBOUNCE_EVENT + workflow, [tenant, key value])``. No ``wait_for_event`` can wait on that name
(step and event names have no ``@``), so no delivered event ever matches it.
"""

from __future__ import annotations

import json
from typing import Final

from orchestrator.core.state import ExecutionState

DEBOUNCE_EVENT: Final = "@debounce/"


def debounce_wait_key(tenant: str, workflow: str, key: str) -> tuple[str, str]:
    """The wait index key of the executions of ``workflow`` in a quiet period for ``key``."""
    return DEBOUNCE_EVENT + workflow, json.dumps([tenant, key], separators=(",", ":"))


def debounce_wait_keys(state: ExecutionState) -> set[tuple[str, str | None]]:
    """The state's entry while it is in its quiet period; none after."""
    if state.debounce_key is None or not state.debouncing:
        return set()
    return {debounce_wait_key(state.tenant, state.workflow, state.debounce_key)}
