"""Fake trigger sources for the trigger manager's tests: they record starts and stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from triggers.sources import SourceSpec, SourceStats

Event = tuple[str, str, str, int]  # (start|stop, workflow, trigger, version)


class FakeSource:
    """Records its start and stop in the shared journal; fails or hangs on request."""

    def __init__(self, spec: SourceSpec, fakes: Fakes) -> None:
        self.spec = spec
        self.fakes = fakes
        self.stats = SourceStats()

    def _entry(self, what: str) -> Event:
        return (what, self.spec.workflow, self.spec.trigger.name, self.spec.version)

    async def start(self) -> None:
        name = self.spec.trigger.name
        if name in self.fakes.hang:
            await asyncio.Event().wait()
        if name in self.fakes.fail:
            raise ConnectionError(self.fakes.fail[name])
        self.fakes.journal.append(self._entry("start"))
        self.fakes.running[(self.spec.workflow, name)] = self
        self.stats.received = 7

    async def stop(self) -> None:
        if self.fakes.running.get((self.spec.workflow, self.spec.trigger.name)) is self:
            del self.fakes.running[(self.spec.workflow, self.spec.trigger.name)]
            self.fakes.journal.append(self._entry("stop"))


class Fakes:
    """The factory for FakeSources and what they did."""

    def __init__(self) -> None:
        self.journal: list[Event] = []
        self.running: dict[tuple[str, str], FakeSource] = {}
        self.specs: list[SourceSpec] = []
        self.fail: dict[str, str] = {}  # trigger name -> error message of start()
        self.hang: set[str] = set()  # trigger names whose start() never returns

    def __call__(self, spec: SourceSpec) -> FakeSource:
        self.specs.append(spec)
        return FakeSource(spec, self)

    def versions(self) -> dict[tuple[str, str], int]:
        return {key: source.spec.version for key, source in self.running.items()}


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
