"""A weighted fair queue of step tasks across tenants (start-time fair queueing).

Each tenant has its own FIFO. An item's start tag is ``max(V, the finish tag of the tenant's
previous item)``, and its finish tag is the start tag plus ``1 / weight``. ``V`` is the start tag
of the item served last. ``get`` serves the tenant whose head has the smallest start tag (ties go
to the earliest arrival). So a tenant with weight 3 is served three times as often as one with
weight 1 while both have work, and a tenant that was idle neither saves up credit nor waits
behind another's backlog: its next task is served within about one round.

``get`` waits on a future that ``put_nowait`` resolves, as ``asyncio.Queue`` does. The queue is
unbounded by itself; its callers bound what they put.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
DEFAULT_WEIGHT = 1.0


@dataclass(slots=True)
class _Lane(Generic[T]):
    items: deque[tuple[float, T]] = field(default_factory=deque)  # (start tag, item)
    last_finish: float = 0.0


class FairQueue(Generic[T]):
    def __init__(self, weights: Mapping[str, float] | None = None, default_weight: float = DEFAULT_WEIGHT) -> None:
        for tenant, weight in (weights or {}).items():
            if not weight > 0:
                raise ValueError(f"the weight of tenant {tenant!r} must be above 0, got {weight}")
        if not default_weight > 0:
            raise ValueError("the default weight must be above 0")
        self.weights = dict(weights or {})
        self.default_weight = default_weight
        self._lanes: dict[str, _Lane[T]] = {}
        self._heads: list[tuple[float, int, str]] = []  # (start tag of the head, arrival, tenant)
        self._arrivals = itertools.count()
        self._virtual = 0.0
        self._size = 0
        self._getters: deque[asyncio.Future[None]] = deque()

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """New weights, for the items put from now on."""
        for tenant, weight in weights.items():
            if not weight > 0:
                raise ValueError(f"the weight of tenant {tenant!r} must be above 0, got {weight}")
        self.weights = dict(weights)

    def weight(self, tenant: str) -> float:
        return self.weights.get(tenant, self.default_weight)

    def qsize(self) -> int:
        return self._size

    def empty(self) -> bool:
        return self._size == 0

    def depth(self, tenant: str) -> int:
        lane = self._lanes.get(tenant)
        return len(lane.items) if lane else 0

    def items(self) -> list[T]:
        """The queued items, lane by lane (for inspection; the order is not the serving order)."""
        return [item for lane in self._lanes.values() for _, item in lane.items]

    def remove_if(self, drop: Callable[[T], bool]) -> int:
        """Take every queued item ``drop`` accepts out of the queue; how many."""
        removed = 0
        for tenant in list(self._lanes):
            lane = self._lanes[tenant]
            kept = deque(entry for entry in lane.items if not drop(entry[1]))
            removed += len(lane.items) - len(kept)
            lane.items = kept
            if not kept:
                del self._lanes[tenant]
        if removed:
            self._size -= removed
            self._heads = [(lane.items[0][0], next(self._arrivals), t) for t, lane in self._lanes.items()]
            heapq.heapify(self._heads)
        return removed

    def put_nowait(self, tenant: str, item: T) -> None:
        lane = self._lanes.get(tenant)
        if lane is None:
            lane = self._lanes[tenant] = _Lane()
        start = max(self._virtual, lane.last_finish)
        lane.last_finish = start + 1.0 / self.weight(tenant)
        lane.items.append((start, item))
        if len(lane.items) == 1:
            heapq.heappush(self._heads, (start, next(self._arrivals), tenant))
        self._size += 1
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def get_nowait(self) -> T:
        if not self._heads:
            raise asyncio.QueueEmpty
        start, _, tenant = heapq.heappop(self._heads)
        lane = self._lanes[tenant]
        _, item = lane.items.popleft()
        self._virtual = start
        self._size -= 1
        if lane.items:
            heapq.heappush(self._heads, (lane.items[0][0], next(self._arrivals), tenant))
        else:
            del self._lanes[tenant]  # an idle tenant keeps nothing (no saved-up credit)
        return item

    async def get(self) -> T:
        while not self._heads:
            waiter = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if self._heads and not waiter.cancelled():  # pass a wake-up on to the next getter
                    self._wake_one()
                raise
        return self.get_nowait()

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
