"""The handover fence of the Kafka-mode admission: one epoch per admitter, claimed by
compare-and-set, carried on every grant, checked by the execution's owner.

The admitter (the owner of commands shard 0, ``admission_feed``) claims a new epoch each time it
takes over: it saves the record ``EPOCH_KEY`` of the ``ScheduleStates`` store at the next
version, and that version is its epoch. Its grants (``AdmitExecution``) name it. The owner of
an execution refuses a grant whose epoch is older than the stored one, so once a newer admitter
has claimed, what an old one still sends (a zombie that has not noticed it lost shard 0, a
grant redelivered from the commands topic) admits nothing. An admitter that finds the stored
epoch is no longer its own takes over again: it claims anew and folds its table from the log.

The owner reads the stored epoch at most ``FRESH_SECONDS`` old. That is safe because a new
admitter, after claiming, grants nothing for ``SETTLE_SECONDS`` (much longer) and then folds its
table from the log: an old grant applied within the freshness window is in the log by then and
counted. A grant that names a newer epoch than the one read refreshes it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from orchestrator.core.commands import AdmitExecution, Command
from orchestrator.ports import ScheduleStates

log = logging.getLogger(__name__)
EPOCH_KEY: Final = "admission/epoch"  # schedule keys are tenant/workflow/name: no clash
FRESH_SECONDS: Final = 1.0  # the owner's stored epoch is at most this old (well under the settle)
CLAIM_ATTEMPTS: Final = 10


class EpochClaim:
    """The admitter's side: claim an epoch, and tell whether it is still the stored one."""

    def __init__(self, states: ScheduleStates, node: str) -> None:
        self.states = states
        self.node = node
        self.epoch: int | None = None

    async def claim(self, now: float) -> int:
        """Store the next epoch as this admitter's; returns it."""
        for _ in range(CLAIM_ATTEMPTS):
            record = await self.states.load(EPOCH_KEY)
            if await self.states.save(EPOCH_KEY, record.version, {"node": self.node, "claimed_at": now}):
                self.epoch = record.version + 1
                log.info("admission: epoch %d claimed by %s", self.epoch, self.node)
                return self.epoch
        raise RuntimeError(f"admission epoch: {CLAIM_ATTEMPTS} claims lost to other admitters in a row")

    async def held(self) -> bool:
        """Whether the stored epoch is still the one this admitter claimed."""
        if self.epoch is None:
            return False
        record = await self.states.load(EPOCH_KEY)
        return record.version == self.epoch


class EpochFence:
    """The owner's side: ``refusal(command)`` says why a grant of an older epoch admits nothing."""

    def __init__(self, states: ScheduleStates, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.states = states
        self.monotonic = monotonic
        self.refused = 0
        self._current = 0
        self._read_at: float | None = None

    async def refusal(self, command: Command) -> str | None:
        """None when the command may be applied; else the reason it may not."""
        if not isinstance(command, AdmitExecution) or command.epoch is None:
            return None
        now = self.monotonic()
        stale = self._read_at is None or now - self._read_at >= FRESH_SECONDS
        if stale or command.epoch > self._current:
            self._current = (await self.states.load(EPOCH_KEY)).version
            self._read_at = now
        if command.epoch >= self._current:
            return None
        self.refused += 1
        log.warning(
            "execution %s: a grant of admission epoch %d refused, epoch %d admits now",
            command.execution_id,
            command.epoch,
            self._current,
        )
        return f"a grant of admission epoch {command.epoch} is refused: epoch {self._current} admits now"
