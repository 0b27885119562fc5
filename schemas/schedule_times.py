"""The fire times of a schedule trigger: pure functions of the trigger and an instant (no clock).

Cron expressions are parsed and stepped by **croniter** (the cron library faust-streaming already
brings in, pinned below 6 by it), but only over *naive wall-clock times*; the mapping of a wall time
to instants in the trigger's time zone is done here with the standard library's ``zoneinfo``
(the system's tz database, else the ``tzdata`` package). croniter's own time-zone handling gets
daylight-saving days wrong (tests/unit/test_schedule_times.py shows each case): after a fall-back
day a daily ``30 2 * * *`` fires at 03:30 once, and ``*/30 * * * *`` skips the repeated hour.

The rules, for a wall time ``w`` the cron expression matches:

- ``w`` exists once: it fires at that instant;
- ``w`` falls in a spring-forward gap (does not exist): it fires at ``w`` read with the offset
  before the gap, i.e. shifted forward by the gap (02:30 Europe/Paris on the spring day fires at
  03:30 CEST); an instant that another wall time also gives fires once;
- ``w`` exists twice (fall back): it fires at the first occurrence only, unless the hour field is
  ``*`` (the expression fires every hour): then at both, so "every 15 minutes" keeps firing
  every 15 minutes of real time.

``every`` intervals are plain arithmetic on instants: ``anchor + k * interval`` where the anchor is
``start_at`` (else the Unix epoch), so every process computes the same times without any state.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from schemas.definition import ScheduleTrigger

__all__ = ["FireTimes", "check_cron", "parse_duration", "parse_timezone", "rfc3339_ms"]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
_UNITS = (86_400.0, 3_600.0, 60.0, 1.0)
MAX_SHIFT = timedelta(hours=3)  # more than any DST gap or fold in the tz database
LOOKBACK = timedelta(hours=3)
MIN_EVERY = 1.0  # seconds: fire times are kept to the millisecond, timers to about that


def parse_duration(value: str | float, name: str = "duration") -> float:
    """Seconds from a number or text like ``30s``, ``5m``, ``1h30m``, ``2d``; ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds or text like '30s', not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value.strip())
        if not value.strip() or match is None:
            raise ValueError(f"{name} {value!r} is not a duration like '30s', '5m', '1h30m', '2d' or seconds")
        seconds = sum(float(part) * unit for part, unit in zip(match.groups(), _UNITS, strict=True) if part)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return seconds


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone; ValueError naming it when the tz database has no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Paris' or 'UTC')") from None


def check_cron(expression: str) -> None:
    """ValueError with croniter's reason when the expression is not a valid cron expression."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron {expression!r} has {len(fields)} fields; it needs 5 (minute hour day month weekday)"
            " or 6 (second first)"
        )
    try:
        it = croniter(expression, datetime(2000, 1, 1), second_at_beginning=len(fields) == 6)
        it.get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"cron {expression!r} is invalid: {exc}") from None


def rfc3339_ms(instant: float) -> str:
    """UTC text with milliseconds: ``2026-03-29T01:30:00.000Z`` (the form fire times are keyed by)."""
    return datetime.fromtimestamp(instant, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FireTimes:
    """The fire times of one trigger. ``seed`` (workflow/trigger) makes the jitter stable."""

    def __init__(self, trigger: ScheduleTrigger, seed: str) -> None:
        self.trigger = trigger
        self.seed = seed
        self.zone = parse_timezone(trigger.timezone)
        self.start = trigger.start_at.timestamp() if trigger.start_at is not None else None
        self.end = trigger.end_at.timestamp() if trigger.end_at is not None else None
        self.jitter_seconds = parse_duration(trigger.jitter, "jitter")
        self.interval: float | None = None
        self.cron = trigger.cron
        if trigger.every is not None:
            self.interval = parse_duration(trigger.every, "every")
            if self.interval < MIN_EVERY:
                raise ValueError(f"every must be at least {MIN_EVERY:g}s, not {trigger.every!r}")
        elif trigger.cron is not None:
            check_cron(trigger.cron)
            fields = trigger.cron.split()
            self.seconds_field = len(fields) == 6
            self.every_hour = fields[2 if self.seconds_field else 1] == "*"
        else:
            raise ValueError("a schedule needs 'cron' or 'every'")

    # -- the sequence --------------------------------------------------------------------------

    def next_after(self, instant: float) -> float | None:
        """The first fire time strictly after ``instant`` (within start_at/end_at), or None."""
        if self.start is not None and instant < self.start:
            instant = self.start - 0.001  # fire times are kept to the millisecond
        found = self._interval_next(instant) if self.interval is not None else self._cron_next(instant)
        if found is None or (self.end is not None and found > self.end):
            return None
        return found

    def between(self, after: float, until: float) -> Iterator[float]:
        """Fire times ``t`` with ``after < t <= until``, in order (a generator: bound it yourself)."""
        current = after
        while True:
            found = self.next_after(current)
            if found is None or found > until:
                return
            yield found
            current = found

    def upcoming(self, after: float, count: int) -> list[float]:
        """The next ``count`` fire times after ``after``."""
        times: list[float] = []
        current = after
        while len(times) < count:
            found = self.next_after(current)
            if found is None:
                break
            times.append(found)
            current = found
        return times

    def jitter(self, scheduled: float) -> float:
        """The stable delay of one fire: a hash of (seed, time) scaled into [0, jitter)."""
        if not self.jitter_seconds:
            return 0.0
        digest = hashlib.sha256(f"{self.seed}/{rfc3339_ms(scheduled)}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 * self.jitter_seconds

    def local(self, scheduled: float) -> str:
        """The fire time in the trigger's zone, with its offset: ``2026-03-29T03:30:00+02:00``."""
        return datetime.fromtimestamp(scheduled, self.zone).isoformat(timespec="seconds")

    # -- intervals -----------------------------------------------------------------------------

    def _interval_next(self, instant: float) -> float:
        assert self.interval is not None
        anchor = self.start if self.start is not None else 0.0
        steps = math.floor((instant - anchor) / self.interval) + 1
        found = round(anchor + steps * self.interval, 3)
        while found <= instant:  # float rounding at the boundary
            steps += 1
            found = round(anchor + steps * self.interval, 3)
        return found

    # -- cron ------------------------------------------------------------------------------------

    def _walls(self, start: datetime) -> Iterator[datetime]:
        """Wall times the expression matches, strictly after the naive ``start``, in order."""
        assert self.cron is not None
        it = croniter(self.cron, start, second_at_beginning=self.seconds_field)
        while True:
            yield it.get_next(datetime)

    def _instants(self, wall: datetime) -> list[float]:
        """The instants one matched wall time fires at (module docstring: gaps and folds)."""
        first = wall.replace(tzinfo=self.zone, fold=0).timestamp()
        second = wall.replace(tzinfo=self.zone, fold=1).timestamp()
        if first == second:
            return [first]
        if datetime.fromtimestamp(first, self.zone).replace(tzinfo=None) != wall:
            return [first]  # in a gap: fold 0 reads it with the offset before, past the gap
        return [first, second] if self.every_hour else [first]

    def _cron_next(self, instant: float) -> float | None:
        after = datetime.fromtimestamp(instant, self.zone)
        wall = after.replace(tzinfo=None)
        try:
            candidate = next(self._walls(wall))
            times = self._instants(candidate)
            regular = len(times) == 1 and times[0] > instant
            if regular and after.utcoffset() == datetime.fromtimestamp(times[0], self.zone).utcoffset():
                return round(times[0], 3)
            return self._cron_next_near_transition(instant, wall)
        except CroniterError:
            return None

    def _cron_next_near_transition(self, instant: float, wall: datetime) -> float:
        """The slow path around a DST transition: every wall time from a few hours before, until
        no later wall time can map to an earlier instant than the best found."""
        best: float | None = None
        for candidate in self._walls(wall - LOOKBACK):
            for time in self._instants(candidate):
                if time > instant and (best is None or time < best):
                    best = time
            earliest = candidate.replace(tzinfo=self.zone, fold=0).timestamp()
            if best is not None and earliest > best + MAX_SHIFT.total_seconds():
                return round(best, 3)
        raise AssertionError("unreachable")  # pragma: no cover - the walls never end
