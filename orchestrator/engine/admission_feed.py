"""The admission in Kafka mode: one process (the owner of commands shard 0) follows the event
feed, so it sees the commits of every worker, and grants slots by sending commands through the
transport to each execution's owner, whose conditional append records the grant once.

It is a projection of the feed with no stored output: on its first call after a pause (a start,
or shard 0 coming back to this process) it folds its table again from the log's running
executions; after that each batch of feed events re-reads the states the batch touched. States
are read from the log, never from this process's engine cache (other workers commit them).
After taking over it grants nothing for SETTLE_SECONDS, then folds the table once more: grants
the previous admitter sent before it stopped have landed by then and are counted.

Each takeover claims a new admitter epoch (``admission_epoch``) that every grant carries; the
executions' owners refuse the grants of older epochs, so a previous admitter that goes on
granting (it has not noticed it lost shard 0) admits nothing. Every CHECK_SECONDS the admitter
looks whether its epoch is still the stored one; if another claimed since, it takes over again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, Protocol

from orchestrator.core import events as ev
from orchestrator.core.state import ExecutionState
from orchestrator.engine import snapshots
from orchestrator.engine.admission import Load, LocalAdmission
from orchestrator.engine.admission_epoch import EpochClaim, EpochFence
from orchestrator.engine.engine import Engine
from orchestrator.ports import EventLog, ScheduleStates, Transport
from schemas.envelope import Envelope

log = logging.getLogger(__name__)
NAME: Final = "admission"
WATCHED: Final = frozenset({ev.EXECUTION_QUEUED, ev.EXECUTION_ADMITTED, ev.SLOTS_RELEASED})
PAUSE_SECONDS = 5.0  # no call for this long: this process was not the admitter, rebuild
SETTLE_SECONDS = 10.0  # after taking over, grants wait this long (those of the previous admitter land)
CHECK_SECONDS = 2.0  # how often the admitter looks whether its epoch is still the stored one


def log_loader(log_: EventLog) -> Load:
    """Read an execution's current state from the log (snapshot and tail)."""

    async def load(execution_id: str) -> ExecutionState | None:
        loaded = await snapshots.load(log_, execution_id)
        return loaded.state if loaded is not None else None

    return load


class AdmissionFeed:
    """The projection running ``LocalAdmission`` over the feed (see the module docstring)."""

    name = NAME

    def __init__(
        self,
        admission: LocalAdmission,
        monotonic: Callable[[], float] = time.monotonic,
        claim: EpochClaim | None = None,
    ) -> None:
        self.admission = admission
        self.monotonic = monotonic
        self.claim = claim  # None: no epochs (its grants carry none, nothing is fenced)
        self._checked_at: float | None = None
        self._touched: set[str] = set()
        self._last_call: float | None = None
        self._settled_at: float | None = None  # when grants may start after a takeover

    async def apply(self, position: int, envelope: Envelope) -> None:
        if envelope.type in WATCHED or (
            envelope.type in ev.TERMINAL_TYPES and self.admission.table.knows(envelope.subject)
        ):
            self._touched.add(envelope.subject)

    async def flush(self) -> None:
        if await self._rebuilt() or await self._settling():
            return
        touched, self._touched = self._touched, set()
        for execution_id in sorted(touched):
            state = await self.admission.load(execution_id)
            if state is None:
                self.admission.table.forget(execution_id)
            else:
                self.admission.table.sync(state, self.admission.clock())
        await self.admission.act()

    async def idle(self) -> None:
        if not await self._rebuilt() and not await self._settling():
            await self.admission.act()

    async def reset(self) -> None:
        self._last_call = self._settled_at = self._checked_at = None
        self._touched.clear()

    async def _rebuilt(self) -> bool:
        """Fold the table (after claiming an epoch) when this is the first call after a pause or
        another admitter claimed since; True if it did."""
        now, last = self.monotonic(), self._last_call
        if last is not None and now - last < PAUSE_SECONDS and await self._epoch_held(now):
            self._last_call = now
            return False
        if self.claim is not None:
            self.admission.epoch = await self.claim.claim(self.admission.clock())
            self._checked_at = self.monotonic()
        await self.admission.rebuild(act=False)
        self._touched.clear()
        self._last_call = self.monotonic()
        self._settled_at = self._last_call + SETTLE_SECONDS
        return True

    async def _epoch_held(self, now: float) -> bool:
        """False when another admitter claimed an epoch since this one's (looked every CHECK_SECONDS)."""
        if self.claim is None or (self._checked_at is not None and now - self._checked_at < CHECK_SECONDS):
            return True
        self._checked_at = now
        if await self.claim.held():
            return True
        log.warning("admission: epoch %s is no longer the stored one; taking over again", self.claim.epoch)
        return False

    async def _settling(self) -> bool:
        """True while a takeover settles; at its end, fold the table again and grant."""
        if self._settled_at is None:
            return False
        if self.monotonic() < self._settled_at:
            self._touched.clear()  # the fold at the end reads every state anyway
            return True
        self._settled_at = None
        await self.admission.rebuild()  # acts too
        self._touched.clear()
        return True

    @property
    def current(self) -> bool:
        """Whether this process admits now (it was called lately)."""
        return self._last_call is not None and self.monotonic() - self._last_call < PAUSE_SECONDS


class Runner(Protocol):
    def add(self, projection: AdmissionFeed) -> None: ...


def admission_for(
    engine: Engine,
    transport: Transport,
    runner: Runner,
    clock: Callable[[], float],
    epochs: ScheduleStates | None = None,
    node: str = "",
) -> LocalAdmission:
    """The admission of a runtime: over this process's commits with the in-process transport
    (one process commits everything), over the feed in the owner of shard 0 with a durable one,
    fenced by the admitter epochs kept in ``epochs`` (the engine refuses stale grants)."""
    if not transport.durable:
        admission = LocalAdmission(transport.submit, engine.load, engine.log, clock)
        engine.observers.append(admission.on_committed)
        return admission
    admission = LocalAdmission(transport.submit, log_loader(engine.log), engine.log, clock, durable=True)
    claim = None
    if epochs is not None:
        claim = EpochClaim(epochs, node)
        engine.fence = EpochFence(epochs).refusal
    admission.feed = AdmissionFeed(admission, claim=claim)
    runner.add(admission.feed)
    return admission
