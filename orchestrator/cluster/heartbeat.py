"""The heartbeat: this process publishes its node record now, every ``interval`` seconds, and
once more (``stopped``) when it stops. One asyncio task, created in ``start``, cancelled in
``stop``. A failed publish is logged and tried again at the next beat: health reporting never
stops the process it reports on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable

from orchestrator.ports import NodeDirectory, NodeRecord

log = logging.getLogger(__name__)
STOP_TIMEOUT = 2.0  # seconds the farewell publish may take


class Heartbeat:
    def __init__(
        self,
        directory: NodeDirectory,
        describe: Callable[[], NodeRecord],
        interval: float,
    ) -> None:
        self.directory = directory
        self.describe = describe
        self.interval = interval
        self.failures = 0  # publishes that failed in a row
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        farewell = dataclasses.replace(self.describe(), stopped=True, in_flight=0)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.directory.publish(farewell)

    async def beat(self) -> None:
        """Publish the record once; log (at most every tenth in a row) when it fails."""
        try:
            await self.directory.publish(self.describe())
        except Exception as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 10 == 0:
                log.warning("heartbeat not published (%d in a row): %r", self.failures, exc)
            return
        self.failures = 0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

