"""``async with`` for anything that opens in ``start()`` and closes in ``stop()``; ``Supervised``
for started parts that can tell the readiness probe why they cannot work."""

from __future__ import annotations

from typing import Protocol, Self, runtime_checkable


@runtime_checkable
class Supervised(Protocol):
    """A part whose background work can stop or fail while the process runs."""

    def problem(self) -> str | None:
        """Why this part cannot do its job now (one short sentence), or None when it can."""


class Lifecycle:
    """Mixin: ``async with thing:`` calls ``await thing.start()`` and, on the way out, ``stop()``."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
