"""Deferred task records kept in memory, so read-ahead takes them without reading Kafka again.

Read-ahead (``read_ahead.py``) leaves a tenant's records past its bound in Kafka and, once the
tenant has room, seeks back to read them again. Each such seek moves the partition's position
away from its end, and the records that land there meanwhile (a quiet tenant's) wait for the
re-read. A lane therefore also keeps the raw record of each record it defers, per tenant in
offset order, while the bytes of every lane's parked records stay within one budget; when a
tenant has room again its oldest parked records are taken from here (decoded then), and only
records deferred past the budget are read from Kafka again. Parked records stay deferred in the
read-ahead's bookkeeping until taken, so the commit point never passes them and a successor
reads them again from Kafka. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

RECORD_OVERHEAD = 200  # bytes counted per parked record beyond its key and value


class ParkingBudget:
    """Bytes of parked records, shared by the lanes of one consumer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


def record_size(record: Any) -> int:
    return len(record.value or b"") + len(record.key or b"") + RECORD_OVERHEAD


class ParkedRecords:
    """One lane's parked records: tenant -> offset -> raw record, oldest first."""

    def __init__(self, budget: ParkingBudget) -> None:
        self.budget = budget
        self._by_tenant: dict[str, OrderedDict[int, Any]] = {}
        self._sizes: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._sizes)

    def park(self, offset: int, tenant: str, record: Any) -> bool:
        """Keep ``record`` if the budget has room; False when it stays in Kafka only."""
        size = record_size(record)
        if offset in self._sizes or self.budget.used + size > self.budget.limit:
            return False
        self._by_tenant.setdefault(tenant, OrderedDict())[offset] = record
        self._sizes[offset] = size
        self.budget.used += size
        return True

    def tenants(self) -> list[str]:
        return list(self._by_tenant)

    def oldest(self, tenant: str) -> tuple[int, Any] | None:
        """Remove and return the tenant's oldest parked record, or None."""
        queue = self._by_tenant.get(tenant)
        if not queue:
            return None
        offset, record = queue.popitem(last=False)
        if not queue:
            del self._by_tenant[tenant]
        self._release(offset)
        return offset, record

    def drop(self, offset: int, tenant: str) -> None:
        """Forget a parked record taken some other way (read from Kafka again), if parked."""
        queue = self._by_tenant.get(tenant)
        if queue is not None and queue.pop(offset, None) is not None:
            if not queue:
                del self._by_tenant[tenant]
            self._release(offset)

    def clear(self) -> None:
        """The lane is gone: give its bytes back."""
        for offset in list(self._sizes):
            self._release(offset)
        self._by_tenant.clear()

    def _release(self, offset: int) -> None:
        self.budget.used -= self._sizes.pop(offset)
