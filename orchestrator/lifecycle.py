"""``async with`` for anything that opens in ``start()`` and closes in ``stop()``."""

from __future__ import annotations

from typing import Self


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
