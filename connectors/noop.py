"""Noop connector: returns the step's arguments unchanged (for benchmarks and tests)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from connectors.base import StepCall


class NoopConnector:
    """Echoes ``call.args``; holds no resources."""

    name = "noop"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def __aenter__(self) -> NoopConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    async def invoke(self, call: StepCall) -> Any:
        return call.args
