"""Noop connector: returns the step's arguments unchanged (for benchmarks and tests)."""

from __future__ import annotations

from typing import Any

from connectors.base import StepCall
from orchestrator.lifecycle import Lifecycle


class NoopConnector(Lifecycle):
    """Echoes ``call.args``; holds no resources."""

    name = "noop"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def invoke(self, call: StepCall) -> Any:
        return call.args
