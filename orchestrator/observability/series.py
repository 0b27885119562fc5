"""Counters, gauges and histograms updated from the event loop, collected as Prometheus families.

``prometheus_client``'s own metric classes take a lock and walk their buckets on every update;
the instrumentation hooks run inline on the hot path, always on the event loop's thread
(``orchestrator.instrumentation``), so these keep plain numbers per label tuple instead and turn
them into ``prometheus_client`` metric families when a registry collects them (the exposition,
also on the event loop). A histogram update is one ``bisect`` and two additions.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

Labels = tuple[str, ...]


class Series:
    """One metric name with its label names; ``families`` yields what a scrape shows."""

    name: str
    documentation: str
    labelnames: tuple[str, ...]

    def families(self) -> Iterator[Metric]:
        raise NotImplementedError


class Counter(Series):
    """A monotonic count per label tuple (exposed as ``<name>_total``; give the name without it)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def families(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(self.values.items()):
            family.add_metric(labels, value)
        yield family


class Gauge(Series):
    """A value per label tuple. With ``expire_after``, a series not set for that many seconds
    is left out of scrapes (and forgotten): e.g. the lag of a partition this process no longer owns."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        expire_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.values: dict[Labels, float] = {}
        self._set_at: dict[Labels, float] = {}
        self._expire_after = expire_after
        self._clock = clock

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value
        if self._expire_after is not None:
            self._set_at[labels] = self._clock()

    def add(self, labels: Labels, amount: float) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def families(self) -> Iterator[Metric]:
        if self._expire_after is not None:
            oldest = self._clock() - self._expire_after
            for labels in [k for k, at in self._set_at.items() if at < oldest]:
                del self._set_at[labels]
                self.values.pop(labels, None)
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in sorted(self.values.items()):
            family.add_metric(labels, value)
        yield family


class Histogram(Series):
    """Observations per label tuple in fixed buckets (upper bounds, ascending; +Inf is added)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        bounds = [float(b) for b in buckets if not math.isinf(b)]
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be ascending and distinct, got {list(buckets)}")
        self.bounds = bounds
        self._cells: dict[Labels, list[float]] = {}  # per label tuple: a count per bucket, +Inf, then the sum

    def observe(self, labels: Labels, value: float) -> None:
        try:
            cell = self._cells[labels]
        except KeyError:  # once per label tuple
            cell = self._cells[labels] = [0.0] * (len(self.bounds) + 2)
        cell[bisect_left(self.bounds, value)] += 1
        cell[-1] += value

    def families(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        names = [*(_bound(b) for b in self.bounds), "+Inf"]
        for labels, cell in sorted(self._cells.items()):
            cumulative, buckets = 0.0, []
            for name, count in zip(names, cell[:-1], strict=True):
                cumulative += count
                buckets.append((name, cumulative))
            family.add_metric(labels, buckets, cell[-1])
        yield family


def _bound(value: float) -> str:
    """A bucket bound as Prometheus clients print it (``0.5``, ``1.0``, ``10.0``)."""
    return repr(float(value))
