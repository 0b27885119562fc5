"""Which offset of one partition is safe to commit while its records are processed concurrently. Pure.

Records are *taken* in offset order (offsets grow but may have gaps: compaction, transaction
markers) and *finish* in any order. The committed offset is the next record to read after a
restart, so it may only move past a record once that record and every record taken before it
finished: it is the lowest unfinished offset, or one past the last record taken when all are done.

A record that fails is simply not finished; the owner then ``rewind``s to the first unfinished
offset (seeking the consumer there) and the records from that point are taken again, including
any that had finished after it (harmless: inbound messages are deduplicated).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """One partition's bookkeeping: taken-but-unfinished offsets, and the last commit."""

    __slots__ = ("_next", "_unfinished", "committed")

    def __init__(self) -> None:
        # In offset order (insertion order, offsets grow). An OrderedDict finds its first entry in
        # constant time; a dict walks over the slots of every entry removed before it.
        self._unfinished: OrderedDict[int, None] = OrderedDict()
        self._next: int | None = None  # one past the last offset taken (or where we rewound to)
        self.committed: int | None = None  # the last offset committed to the broker

    @property
    def in_flight(self) -> int:
        return len(self._unfinished)

    @property
    def position(self) -> int | None:
        """One past the last offset taken (None before the first)."""
        return self._next

    def take(self, offset: int) -> bool:
        """Record ``offset`` as handed to processing; False (and nothing recorded) if it is not
        after the last one taken, i.e. a record already taken (stale fetch after a rewind)."""
        if self._next is not None and offset < self._next:
            return False
        self._unfinished[offset] = None
        self._next = offset + 1
        return True

    def finish(self, offset: int) -> None:
        """``offset`` is done (its outcome is durable); unknown offsets are ignored."""
        self._unfinished.pop(offset, None)

    def is_unfinished(self, offset: int) -> bool:
        return offset in self._unfinished

    @property
    def first_unfinished(self) -> int | None:
        """The lowest taken offset that has not finished, or None when all have."""
        return next(iter(self._unfinished), None)

    @property
    def commit_offset(self) -> int | None:
        """The offset to commit: after the highest contiguous finished record (None: nothing taken)."""
        first = self.first_unfinished
        return first if first is not None else self._next

    @property
    def needs_commit(self) -> bool:
        offset = self.commit_offset
        return offset is not None and offset != self.committed

    def rewind(self) -> int | None:
        """Forget the unfinished records: they are to be read again. Returns the offset to seek the
        consumer to (the first unfinished, else one past the last taken; None if nothing was taken)."""
        first = self.first_unfinished
        if first is not None:
            self._unfinished.clear()
            self._next = first
        return self._next
