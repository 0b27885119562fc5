"""A concurrency limit whose waiters are let in by a weighted fair queue across tenants.

``async with gate.slot(tenant):`` runs at most ``slots`` bodies at once, like an
``asyncio.Semaphore``; when every slot is taken, the next one to free goes to the waiter with
the smallest start tag (``orchestrator.backends.fair_queue``) rather than to the oldest waiter.
A tenant flooding the gate delays another tenant's next entry by about one round.

A waiter cancelled before its turn stays in the queue as a dead entry and is passed over when it
comes up; a waiter cancelled just after it was let in hands its slot on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from orchestrator.backends.fair_queue import FairQueue


class FairGate:
    def __init__(self, slots: int, weights: Mapping[str, float] | None = None, *, fair: bool = True) -> None:
        if slots < 1:
            raise ValueError(f"a fair gate needs at least one slot, got {slots}")
        self.slots = slots
        self.fair = fair  # False: one FIFO for every tenant
        self._free = slots
        self._waiting = 0  # waiters not cancelled
        self._queue: FairQueue[asyncio.Future[None]] = FairQueue(weights)

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """New weights (1 for a tenant not named), for the waiters queued from now on."""
        self._queue.set_weights(weights)

    @property
    def running(self) -> int:
        """Bodies inside the gate now."""
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        await self.acquire(tenant)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, tenant: str) -> None:
        if self._free > 0 and self._waiting == 0:
            while not self._queue.empty():  # only dead entries are left: drop them
                self._queue.get_nowait()
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(tenant if self.fair else "", waiter)
        self._waiting += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # let in, then cancelled before it ran: the slot goes on
            else:
                self._waiting -= 1
                waiter.cancel()
            raise

    def release(self) -> None:
        """Give a slot back: to the next live waiter in fair order, else to the free pool."""
        while not self._queue.empty():
            waiter = self._queue.get_nowait()
            if not waiter.done():
                self._waiting -= 1
                waiter.set_result(None)
                return
        self._free += 1
