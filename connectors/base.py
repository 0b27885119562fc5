"""The connectors of one process, by name. The interface itself (``Connector``, ``StepCall``,
``ConnectorError``) is a port, in ``orchestrator/ports.py``; it is re-exported here for connectors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import ChecksSteps, Connector, ConnectorError, StepCall

__all__ = ["Connector", "ConnectorError", "Connectors", "StepCall"]


class Connectors(Lifecycle):
    """The connectors of one process, by name; starts and stops them together (a ``ConnectorLookup``)."""

    def __init__(self, connectors: Iterable[Connector]) -> None:
        self._by_name = {connector.name: connector for connector in connectors}
        self._started: list[Connector] = []

    def get(self, name: str) -> Connector:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConnectorError(
                "connector.unknown", f"no connector named {name!r}", retryable=False
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def step_problems(self, name: str, config: Mapping[str, Any]) -> list[str]:
        """What the named connector refuses in a step's static config (``ChecksSteps``)."""
        connector = self._by_name.get(name)
        return connector.step_problems(config) if isinstance(connector, ChecksSteps) else []

    async def start(self) -> None:
        for connector in self._by_name.values():
            await connector.start()
            self._started.append(connector)

    async def stop(self) -> None:
        while self._started:
            await self._started.pop().stop()
