"""Reading a tasks partition past one tenant's backlog: which records a lane holds, which it
leaves in Kafka for later, and where its consumer should read next. Pure bookkeeping (no I/O).

A lane holds (decoded, waiting for or running in the fair gate) at most ``per_tenant`` records
of one tenant and ``total`` records in all. A record over those bounds is **deferred**: only its
offset and tenant are kept, its payload is dropped, and it stays uncommitted (the commit point
never passes the lowest deferred offset). When the tenant has room again, the lane seeks back to
its lowest deferred record and reads from there: records it holds or finished are passed over,
deferred ones are taken now or deferred again, and once no deferred record ahead can be taken
the consumer jumps forward to where it had read to. So a tenant flooding a partition does not
keep another tenant's records behind it in Kafka, and what a worker holds stays bounded.

The lane reads at most ``window`` records past its commit point; past that it stops, and the
flood is back to head-of-line blocking until the partition's oldest records finish. To avoid
seeking back after every finished record, a tenant is read again once it is down to half of its
bound (or the lane to half of ``total``).
"""

from __future__ import annotations

import bisect
from enum import Enum
from typing import Any, Final

TENANT_HEADER: Final = "tenant"  # task records name their tenant here (the transport's dispatch)


class Seen(Enum):
    NEW = "new"  # never read before: decode it and admit it
    DEFERRED = "deferred"  # read before and left in Kafka: admit it now if there is room
    OLD = "old"  # held or finished already: pass over it


class ReadAhead:
    def __init__(self, per_tenant: int, total: int, window: int) -> None:
        if min(per_tenant, total, window) < 1:
            raise ValueError("read-ahead bounds must be >= 1")
        self.per_tenant = per_tenant
        self.total = total
        self.window = window
        self.next: int | None = None  # one past the last record read for the first time
        self.held: dict[str, int] = {}  # records held per tenant (taken, not finished)
        self.held_total = 0
        self._deferred: dict[int, str] = {}  # offset -> tenant
        self._by_tenant: dict[str, list[int]] = {}  # tenant -> its deferred offsets, sorted

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    @property
    def lowest_deferred(self) -> int | None:
        heads = [offsets[0] for offsets in self._by_tenant.values()]
        return min(heads) if heads else None

    def deferred_tenant(self, offset: int) -> str | None:
        """The tenant of a deferred record; None if the record is not deferred (now)."""
        return self._deferred.get(offset)

    def seen(self, offset: int) -> Seen:
        if offset in self._deferred:
            return Seen.DEFERRED
        if self.next is not None and offset < self.next:
            return Seen.OLD
        return Seen.NEW

    def beyond_window(self, offset: int, commit_point: int | None) -> bool:
        """Whether a new record at ``offset`` lies past the window (``commit_point``: the lane's)."""
        return commit_point is not None and offset - commit_point >= self.window

    def passed(self, offset: int) -> None:
        """A new record that is neither held nor deferred (skipped as undecodable)."""
        self.next = max(self.next or 0, offset + 1)

    def deferred_without_room(self, offset: int) -> bool:
        """A deferred record whose tenant (or the lane) still has no room: pass over it undecoded."""
        tenant = self._deferred.get(offset)
        return tenant is not None and not self.has_room(tenant)

    def has_room(self, tenant: str) -> bool:
        return self.held.get(tenant, 0) < self.per_tenant and self.held_total < self.total

    def admit(self, offset: int, tenant: str) -> bool:
        """Take a new or deferred record if its tenant and the lane have room (True), else defer it."""
        if self.has_room(tenant):
            self.held[tenant] = self.held.get(tenant, 0) + 1
            self.held_total += 1
            self.forget(offset)
            return True
        if offset not in self._deferred:
            self._deferred[offset] = tenant
            bisect.insort(self._by_tenant.setdefault(tenant, []), offset)
            self.passed(offset)
        return False

    def forget(self, offset: int) -> None:
        """A record that will not be taken at all (it does not decode): neither held nor deferred."""
        tenant = self._deferred.pop(offset, None)
        if tenant is not None:
            offsets = self._by_tenant[tenant]
            offsets.pop(bisect.bisect_left(offsets, offset))
            if not offsets:
                del self._by_tenant[tenant]
        self.passed(offset)

    def finish(self, tenant: str) -> None:
        """A held record of ``tenant`` finished (or was abandoned)."""
        count = self.held.get(tenant, 0) - 1
        if count > 0:
            self.held[tenant] = count
        else:
            self.held.pop(tenant, None)
        self.held_total = max(self.held_total - 1, 0)

    def next_position(self, position: int) -> int | None:
        """Where the consumer, about to read ``position``, should read instead; None: go on.

        Re-reading (``position`` before ``next``): the first deferred record from ``position`` on
        whose tenant has room, else ``next``. Caught up: the lowest deferred record of a tenant
        that is down to half its bound, if any."""
        if self.next is None:
            return None
        rereading = position < self.next
        target = self._first_takeable(position if rereading else 0, half=not rereading)
        if rereading:
            target = self.next if target is None else target
        return None if target == position else target

    def _first_takeable(self, start: int, half: bool) -> int | None:
        room = self.total // 2 if half else self.total - 1
        if self.held_total > room:
            return None
        bound = self.per_tenant // 2 if half else self.per_tenant - 1
        best: int | None = None
        for tenant, offsets in self._by_tenant.items():
            if self.held.get(tenant, 0) > bound:
                continue
            index = bisect.bisect_left(offsets, start)
            if index < len(offsets) and (best is None or offsets[index] < best):
                best = offsets[index]
        return best


def header_tenant(record: Any) -> str | None:
    """The tenant a task record names in its ``tenant`` header (None without one: an older
    producer). Read-ahead defers a record on it without decoding the record; the decoded task's
    own tenant is the one the step runs for."""
    for name, value in record.headers or ():
        if name == TENANT_HEADER:
            try:
                return bytes(value).decode()
            except UnicodeDecodeError:
                return None
    return None
