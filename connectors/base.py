"""The connector interface: run one attempt of a task step, with an idempotency key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.lifecycle import Lifecycle


class ConnectorError(Exception):
    """A step failure with a type that retry policies match (e.g. ``http.503``, ``timeout``)."""

    def __init__(self, type_: str, message: str = "", *, retryable: bool = True) -> None:
        super().__init__(f"{type_}: {message}" if message else type_)
        self.type = type_
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class StepCall:
    """What a connector receives for one attempt."""

    execution_id: str
    workflow: str
    step: str
    attempt: int
    idempotency_key: str
    config: dict[str, Any] = field(default_factory=dict)
    args: Any = None
    timeout_seconds: float | None = None


class Connector(Protocol):
    """Opened and closed with the service; ``invoke`` returns JSON-compatible output."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def invoke(self, call: StepCall) -> Any: ...


class Connectors(Lifecycle):
    """The connectors of one process, by name; starts and stops them together."""

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

    async def start(self) -> None:
        for connector in self._by_name.values():
            await connector.start()
            self._started.append(connector)

    async def stop(self) -> None:
        while self._started:
            await self._started.pop().stop()
