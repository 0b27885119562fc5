"""Aggregate cells: counters, sums and histograms per (tenant, workflow, version, step, hour).

A cell is the unit the projection stores and the queries merge. ``step`` is ``""`` for the
execution as a whole. ``bucket`` is the start of the hour (seconds since the epoch, UTC) the
counted events happened in. ``through`` is the feed position up to which the stored cell counts
every event that touches it: after a restart, an event at or before it is not counted again.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from orchestrator.analytics.sketch import Histogram

BUCKET_SECONDS = 3600
DAY_SECONDS = 86400
# Daily roll-ups: one cell per (tenant, workflow, version, step, day) holding the sum of that day's
# hourly cells, stored beside them under bucket DAILY_BASE + the day's number (days since the
# epoch), far below any hour a window can name, so a query of hours never reads one.
DAILY_BASE = -(2**62)
EXECUTION = ""  # the step name of an execution-level cell


class CellKey(NamedTuple):
    tenant: str
    workflow: str
    version: int
    step: str
    bucket: int


# How a cell travels to and from a store: its key's fields, then its JSON body.
CellRow = tuple[str, str, int, str, int, str]


def bucket_of(timestamp: float) -> int:
    return int(timestamp // BUCKET_SECONDS) * BUCKET_SECONDS


def daily_bucket(day: int) -> int:
    """The bucket of the roll-up of the day starting at ``day`` (seconds since the epoch)."""
    return DAILY_BASE + day // DAY_SECONDS


def is_daily(bucket: int) -> bool:
    return bucket < DAILY_BASE // 2


def day_of(bucket: int) -> int:
    """The start of the day a bucket (hourly or a roll-up) belongs to."""
    if is_daily(bucket):
        return (bucket - DAILY_BASE) * DAY_SECONDS
    return bucket - bucket % DAY_SECONDS


@dataclass(slots=True)
class Cell:
    counts: dict[str, int] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)
    through: int = 0  # see the module docstring

    def count(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by

    def add(self, name: str, value: float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value

    def observe(self, name: str, seconds: float) -> None:
        histogram = self.histograms.get(name)
        if histogram is None:
            histogram = self.histograms[name] = Histogram()
        histogram.add(seconds)

    def merge(self, other: Cell, histograms: frozenset[str] | None = None) -> None:
        """Add ``other`` in; only the histograms named when ``histograms`` is given."""
        for name, value in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + value
        for name, total in other.sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + total
        for name, histogram in other.histograms.items():
            if histograms is not None and name not in histograms:
                continue
            mine = self.histograms.get(name)
            if mine is None:
                mine = self.histograms[name] = Histogram()
            mine.merge(histogram)

    def histogram(self, name: str) -> Histogram:
        return self.histograms.get(name) or Histogram()

    def to_json(self) -> str:
        body: dict[str, Any] = {"t": self.through}
        if self.counts:
            body["c"] = self.counts
        if self.sums:
            body["s"] = self.sums
        if self.histograms:
            body["h"] = {name: h.to_json() for name, h in self.histograms.items()}
        return orjson.dumps(body).decode()  # compact JSON; several times the standard encoder's speed

    @classmethod
    def from_json(cls, text: str) -> Cell:
        body = orjson.loads(text)
        return cls(
            {k: int(v) for k, v in body.get("c", {}).items()},
            {k: float(v) for k, v in body.get("s", {}).items()},
            {k: Histogram.from_json(v) for k, v in body.get("h", {}).items()},
            int(body.get("t", 0)),
        )


def to_row(key: CellKey, cell: Cell) -> CellRow:
    return (key.tenant, key.workflow, key.version, key.step, key.bucket, cell.to_json())


def from_row(row: CellRow) -> tuple[CellKey, Cell]:
    tenant, workflow, version, step, bucket, body = row
    return CellKey(tenant, workflow, int(version), step, int(bucket)), Cell.from_json(body)


def merged(cells: Iterable[Cell]) -> Cell:
    total = Cell()
    for cell in cells:
        total.merge(cell)
    return total
