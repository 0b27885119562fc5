"""The recovery sweep: each process resumes the idle executions of the commands shards it owns.

An execution's effects (tasks dispatched, timers armed, waits indexed) follow its append. A
command the Kafka transport delivers is committed only after its effects, so a crash redelivers
it; but a command the API applies directly (a start, a signal, a cancel) has nobody to redeliver
it: if the process dies between the append and the dispatch, the events are durable and the
execution waits forever. The sweep finds such executions: every ``interval`` seconds (jittered
by +-20%), and at once for a shard this process was just assigned, it asks the
:class:`~orchestrator.ports.IdleIndex` for the running executions of each owned shard whose last
event is older than ``grace`` and submits ``ResumeExecution`` for each; their owner re-derives
the effects from the state (``Effects.resume``). An execution is resumed once per position (last
sequence), so one that is waiting (a timer, an event, a long step) is not resumed again and
again. Resuming is at-least-once: a step still running after ``grace`` with no other event is
dispatched a second time (same attempt, same idempotency key; the second answer is ignored).

:class:`ScannedIdle` is the index of an event log that keeps none (SQLite, memory): it walks the
running executions of its listing. The Cassandra event log keeps a sharded index of its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable

from orchestrator.core.commands import ResumeExecution
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.history import pager
from orchestrator.ports import EventLog, ExecutionQuery, IdleIndex, ResumeCallback, Shards, Transport

log = logging.getLogger(__name__)
TICK_SECONDS = 1.0  # how often the owned shards are compared with the last ones (assignments)
JITTER = 0.2


class ScannedIdle:
    """The ``IdleIndex`` of an event log without one: its running executions, filtered by shard.

    A scan of every running execution per sweep: cheap for a local database, not for a cluster.
    Which execution was resumed at which sequence is remembered in this process."""

    def __init__(self, log: EventLog, shards: Shards) -> None:
        self.log = log
        self.shards: Shards | None = shards
        self._resumed: dict[str, int] = {}  # execution -> the last sequence it was resumed at

    async def sweep_idle(self, shard: int, now: float, grace: float, resume: ResumeCallback) -> int:
        assert self.shards is not None
        horizon, count, running = now - grace, 0, set()
        async for summary in pager.executions(self.log, ExecutionQuery(status="running")):
            execution_id = summary.execution_id
            if self.shards.shard_of(execution_id) != shard:
                continue
            running.add(execution_id)
            if parse_rfc3339(summary.updated_at) > horizon:
                continue  # moved lately
            if self._resumed.get(execution_id) == summary.last_sequence:
                continue  # resumed at this position already, and still there
            await resume(execution_id)
            self._resumed[execution_id] = summary.last_sequence
            count += 1
        for gone in [e for e in self._resumed if e not in running and self.shards.shard_of(e) == shard]:
            del self._resumed[gone]
        return count


class RecoverySweeper:
    """Resumes the idle executions of the owned shards; ``run`` until cancelled."""

    def __init__(
        self,
        index: IdleIndex,
        transport: Transport,
        clock: Callable[[], float],
        *,
        interval: float,
        grace: float,
        rng: Callable[[], float] = random.random,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval <= 0 or grace < 0:
            raise ValueError(f"recovery sweep: interval must be > 0 and grace >= 0, not {interval}, {grace}")
        self.index = index
        self.transport = transport
        self.clock = clock
        self.interval = interval
        self.grace = grace
        self._rng = rng
        self._timer = timer
        self._sleep = sleep

    def owned(self) -> set[int]:
        """The shards to sweep: those this process owns (a single process: its only shard)."""
        owned = self.transport.owned_shards()
        return {0} if owned is None else set(owned)

    async def sweep(self, shards: Iterable[int] | None = None) -> int:
        """One pass over ``shards`` (default: the owned ones); how many executions were resumed.
        Every shard is tried; the first failure is raised afterwards."""
        total, failure = 0, None
        for shard in sorted(self.owned() if shards is None else shards):
            try:
                total += await self.index.sweep_idle(shard, self.clock(), self.grace, self._resume)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = failure or exc
        if total:
            log.info("recovery sweep: resumed %d idle executions", total)
        if failure is not None:
            raise failure
        return total

    async def run(self) -> None:
        """Sweep every owned shard each ``interval`` (jittered), and a newly assigned one at once.
        Failures are logged; the shards are swept again next time."""
        known: set[int] = set()
        next_full = self._timer() + self._jittered()
        while True:
            owned = self.owned()
            full = self._timer() >= next_full
            targets = owned if full else owned - known
            known = owned
            if full:
                next_full = self._timer() + self._jittered()
            if targets:
                try:
                    await self.sweep(targets)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "recovery sweep of shards %s failed (retried next time): %s", sorted(targets), exc
                    )
            await self._sleep(min(TICK_SECONDS, self.interval))

    async def _resume(self, execution_id: str) -> None:
        await self.transport.submit(ResumeExecution(execution_id=execution_id, now=self.clock()))

    def _jittered(self) -> float:
        return self.interval * (1 - JITTER + 2 * JITTER * self._rng())
