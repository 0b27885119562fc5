"""Answers analytics questions from the store: a time window, the cells in it, a query over them.

``since`` and ``until`` are RFC 3339 times or durations before now (``90m``, ``24h``, ``7d``).
Cells are hourly, so a window is widened to whole hours.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.analytics.cells import (
    BUCKET_SECONDS,
    EXECUTION,
    Cell,
    CellKey,
    CellRow,
    daily_bucket,
    day_of,
    merged,
)
from orchestrator.analytics.store import AnalyticsStore
from orchestrator.core.timefmt import parse_rfc3339, rfc3339

DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
MAX_SPAN = 100 * 366 * 86400  # no window reaches further than a century from now
UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DEFAULT_SINCE = 7 * 86400
DAY = 86400
CACHE_CELLS = 500_000  # parsed cells kept between queries (then the cache starts again)
Level = Literal["all", "executions", "steps"]


class WindowInvalid(ValueError):
    """A ``since`` or ``until`` that is neither an RFC 3339 time nor a duration like ``7d``."""


def seconds_of(duration: str, at_most: int = MAX_SPAN) -> int:
    """``90m`` -> 5400; WindowInvalid for anything but digits and one of s m h d w, or longer
    than ``at_most`` seconds."""
    match = DURATION.match(duration)
    if not match:
        raise WindowInvalid(f"{duration!r} is not a duration like 24h or 7d")
    seconds = int(match.group(1)) * UNIT[match.group(2)]
    if seconds > at_most:
        raise WindowInvalid(f"{duration!r} is longer than {at_most // 86400} days")
    return seconds


def moment(text: str, now: float) -> float:
    """An RFC 3339 time, or now minus a duration (``7d``); WindowInvalid."""
    if DURATION.match(text):
        return now - seconds_of(text)
    try:
        moment = parse_rfc3339(text)
    except ValueError:
        raise WindowInvalid(f"{text!r} is neither an RFC 3339 time nor a duration like 7d or 24h") from None
    if abs(moment - now) > MAX_SPAN:
        raise WindowInvalid(f"{text!r} is more than a century from now")
    return moment


@dataclass(frozen=True, slots=True)
class Window:
    since: int  # first hour bucket included
    until: int  # first hour bucket excluded

    @classmethod
    def parse(cls, since: str | None, until: str | None, now: float) -> Window:
        start = moment(since, now) if since else now - DEFAULT_SINCE
        end = moment(until, now) if until else now
        if end < start:
            raise WindowInvalid("until lies before since")
        first = int(start // BUCKET_SECONDS) * BUCKET_SECONDS
        last = int(end // BUCKET_SECONDS) * BUCKET_SECONDS + BUCKET_SECONDS
        return cls(first, last)


class AnalyticsReader:
    """Reads cells for the queries. Parsed cells are cached by key while their stored body is
    unchanged (past hours never change), so a repeated query parses only what moved."""

    def __init__(self, store: AnalyticsStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._parsed: dict[tuple[str, str, int, str, int], tuple[str, Cell]] = {}
        self._days: dict[tuple[str, str, int, str, int], tuple[list[Cell], Cell]] = {}

    def window(self, since: str | None, until: str | None) -> Window:
        return Window.parse(since, until, self.clock())

    async def cells(
        self,
        tenant: str,
        window: Window,
        workflow: str | None = None,
        version: int | None = None,
        level: Level = "all",
        daily: bool = False,
    ) -> list[tuple[CellKey, Cell]]:
        """The cells of the window; ``level``: ``executions`` or ``steps`` only, or ``all``.
        ``daily``: merged per day (of the hours inside the window), for figures that need no
        hourly resolution. The whole days of the window are read from the projection's daily
        roll-ups where it has written them (every day before its newest one); the other hours
        are read hourly and merged here (a day's merge is kept until one of its cells changes)."""
        if not daily:
            return self._parse(await self.store.cells(tenant, workflow, window.since, window.until), version, level)
        first = -(-window.since // DAY) * DAY  # the whole days inside the window
        last = window.until - window.until % DAY
        rolled: list[tuple[CellKey, Cell]] = []
        if last > first:
            rows = await self.store.cells(tenant, workflow, daily_bucket(first), daily_bucket(last))
            rolled = [(key._replace(bucket=day_of(key.bucket)), cell) for key, cell in self._parse(rows, version, level)]
        covered = sorted({key.bucket for key, _ in rolled})
        hourly: list[tuple[CellKey, Cell]] = []
        for since, until in _gaps(window.since, window.until, covered):
            hourly += self._parse(await self.store.cells(tenant, workflow, since, until), version, level)
        return rolled + self._by_day(hourly)

    def _parse(self, rows: list[CellRow], version: int | None, level: Level) -> list[tuple[CellKey, Cell]]:
        if len(self._parsed) > CACHE_CELLS:
            self._parsed, self._days = {}, {}
        out = []
        parsed = self._parsed
        for row in rows:
            t, w, v, step, bucket, body = row
            if (version is not None and v != version) or (level != "all" and (step == EXECUTION) != (level == "executions")):
                continue
            key = (t, w, v, step, bucket)
            cached = parsed.get(key)
            if cached is None or cached[0] != body:
                cached = parsed[key] = (body, Cell.from_json(body))
            out.append((CellKey(*key), cached[1]))
        return out

    def _by_day(self, hourly: list[tuple[CellKey, Cell]]) -> list[tuple[CellKey, Cell]]:
        groups: dict[tuple[str, str, int, str, int], list[Cell]] = {}
        for key, cell in hourly:
            day = key.bucket - key.bucket % DAY
            groups.setdefault((key.tenant, key.workflow, key.version, key.step, day), []).append(cell)
        out = []
        for day_key, cells in groups.items():
            cached = self._days.get(day_key)  # parsed cells are new objects when their body changed
            if cached is None or len(cached[0]) != len(cells) or any(a is not b for a, b in zip(cached[0], cells, strict=True)):
                cached = self._days[day_key] = (cells, merged(cells))
            out.append((CellKey(*day_key), cached[1]))
        return out

    async def breaches(
        self, tenant: str, window: Window, workflow: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """SLA breaches that ended in the window, newest first."""
        rows = await self.store.breaches(tenant, workflow, window.since, window.until, limit)
        out = []
        for _, flow, at, execution_id, step, body in rows:
            data = json.loads(body)
            out.append({"execution_id": execution_id, "workflow": flow, "version": data.get("version"),
                        "step": step or None, "ended_at": rfc3339(at), "seconds": round(data["seconds"], 6),
                        "limit": data["limit"]})  # fmt: skip
        return out


def _gaps(since: int, until: int, days: list[int]) -> list[tuple[int, int]]:
    """The ranges of [since, until) outside the (sorted) whole days given."""
    out, start = [], since
    for day in days:
        if day > start:
            out.append((start, day))
        start = max(start, day + DAY)
    if until > start:
        out.append((start, until))
    return out
