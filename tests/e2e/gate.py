"""A connector whose calls wait until the test opens its gate (work held in flight)."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.base import StepCall


class Gate:
    name = "gate"

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.open.set()

    async def invoke(self, call: StepCall) -> Any:
        await self.open.wait()
        return {"ok": True}
