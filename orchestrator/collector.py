"""The garbage collector's first-generation threshold while a runtime runs (``gc_threshold``).

CPython collects its youngest generation after every 700 net allocations of container objects
and, every hundred of those, the whole heap. The engine allocates a few dozen containers per
transition (events, states, dicts of data) and most of them live on (in the log, the caches, the
projections), so under load the default spends a fifth of the process's CPU scanning objects
that survive, and its full collections pause the event loop for 100-300 ms
(docs/performance.md, "The collector"). A higher first threshold collects the same garbage
with far fewer scans. The thresholds in force before ``apply`` are put back by ``restore``, so
a runtime started inside a larger program leaves its collector as it found it; a threshold the
program set higher already is kept.
"""

from __future__ import annotations

import gc


class CollectorThreshold:
    """Raise the first-generation threshold to ``first`` between ``apply`` and ``restore``
    (0: leave the collector alone)."""

    def __init__(self, first: int) -> None:
        self.first = first
        self._saved: tuple[int, int, int] | None = None

    def apply(self) -> None:
        if self.first <= 0 or self._saved is not None:
            return
        current = gc.get_threshold()
        if current[0] >= self.first or current[0] == 0:  # set higher already, or disabled
            return
        self._saved = current
        gc.set_threshold(self.first, current[1], current[2])

    def restore(self) -> None:
        saved, self._saved = self._saved, None
        if saved is not None and gc.get_threshold()[0] == self.first:  # nobody changed it since
            gc.set_threshold(*saved)
