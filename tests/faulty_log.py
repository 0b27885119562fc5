"""An ``EventLog`` that fails: at random with a seeded RNG, or exactly where a test scripts it.

Wraps a real log. Faults are what a real backend raises: ``BackendUnavailable`` (the SQLite
writer's "commit failed", a Cassandra timeout), ``OSError`` (disk I/O) and a spurious
``ConcurrencyError``. The nasty one is ``after``: the append is committed, then the caller is
told it failed, so it cannot know whether its events landed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.ports import (
    BackendUnavailable,
    ConcurrencyError,
    EventLog,
    ExecutionPage,
    ExecutionQuery,
    ExecutionSummary,
    Link,
    Snapshot,
)
from schemas.envelope import Envelope

When = Literal["before", "after"]
AppendFilter = Callable[[str, Sequence[Envelope]], bool]


class InjectedFault(BackendUnavailable):
    """A fault the wrapper made up."""


@dataclass(frozen=True)
class FaultRates:
    """Probabilities per call: append failing before its commit, after it, and reads failing."""

    append_before: float = 0.0
    append_after: float = 0.0
    read: float = 0.0


@dataclass
class _Scripted:
    matches: AppendFilter
    when: When
    times: int


@dataclass
class FaultyLog:
    """Delegates to ``inner``; ``enabled = False`` turns every fault off (for checking results)."""

    inner: EventLog
    seed: int = 0
    rates: FaultRates = field(default_factory=FaultRates)
    enabled: bool = True
    injected: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(init=False)
    _scripts: list[_Scripted] = field(default_factory=list)
    _reads_to_fail: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- scripting -----------------------------------------------------------------------------

    def fail_appends(self, when: When, times: int = 1, matches: AppendFilter | None = None) -> None:
        """Fail the next ``times`` appends that ``matches`` (execution id, events) accepts."""
        self._scripts.append(_Scripted(matches or (lambda _e, _v: True), when, times))

    def fail_reads(self, times: int = 1) -> None:
        """Fail the next ``times`` reads of any kind (read, summary, listing, snapshot)."""
        self._reads_to_fail += times

    # -- faults --------------------------------------------------------------------------------

    def _scripted(self, execution_id: str, events: Sequence[Envelope]) -> When | None:
        for script in self._scripts:
            if script.times > 0 and script.matches(execution_id, events):
                script.times -= 1
                return script.when
        return None

    def _roll(self, rate: float) -> bool:
        return self.enabled and rate > 0 and self._rng.random() < rate

    def _fault(self, kind: str, execution_id: str, expected: int = 0, scripted: bool = False) -> Exception:
        """A scripted fault is an ``InjectedFault``; a random one any of the kinds above."""
        self.injected[kind] += 1
        if kind == "append_after" or scripted:
            return InjectedFault(f"{execution_id}: commit outcome unknown (injected)")
        choice = self._rng.randrange(3)
        if choice == 0:
            return InjectedFault(f"{execution_id}: {kind} failed (injected)")
        if choice == 1 or kind != "append_before":
            return OSError(5, f"disk I/O error (injected {kind})")
        return ConcurrencyError(execution_id, expected)

    def _maybe_fail_read(self, execution_id: str) -> None:
        if self._reads_to_fail > 0 and self.enabled:
            self._reads_to_fail -= 1
            raise self._fault("read", execution_id, scripted=True)
        if self._roll(self.rates.read):
            raise self._fault("read", execution_id)

    # -- EventLog ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def append(self, execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
        scripted = self._scripted(execution_id, events) if self.enabled else None
        if scripted == "before" or (scripted is None and self._roll(self.rates.append_before)):
            raise self._fault("append_before", execution_id, expected_sequence, scripted is not None)
        await self.inner.append(execution_id, expected_sequence, events)
        if scripted == "after" or (scripted is None and self._roll(self.rates.append_after)):
            raise self._fault("append_after", execution_id, scripted=True)

    async def read(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[Envelope]:
        self._maybe_fail_read(execution_id)
        return await self.inner.read(execution_id, after_sequence, limit)

    async def summary(self, execution_id: str) -> ExecutionSummary | None:
        self._maybe_fail_read(execution_id)
        return await self.inner.summary(execution_id)

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        self._maybe_fail_read("(listing)")
        return await self.inner.list_executions(query)

    def execution_ids(self) -> AsyncIterator[str]:
        return self.inner.execution_ids()

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self.inner.save_snapshot(snapshot)

    async def load_snapshot(self, execution_id: str, at_most: int | None = None) -> Snapshot | None:
        self._maybe_fail_read(execution_id)
        return await self.inner.load_snapshot(execution_id, at_most)

    async def delete_execution(self, execution_id: str) -> bool:
        return await self.inner.delete_execution(execution_id)

    async def add_link(self, link: Link) -> None:
        await self.inner.add_link(link)

    async def links(self, execution_id: str) -> list[Link]:
        return await self.inner.links(execution_id)

    def __getattr__(self, name: str) -> Any:
        """Anything else a backend offers (not part of the port) passes through unfaulted."""
        if name.startswith("_") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
