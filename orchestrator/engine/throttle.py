"""Per-connector rate limits in the worker: GCRA throttling that delays calls, never drops them.

``ORCHESTRATOR_CONNECTOR_RATE_LIMITS="http=50,payments-api=20/5"``: at most 50 ``http`` calls a
second in this process, and at most 20 a second (bursts of 5) for steps whose config names
``rate_limit: payments-api``. Both apply to a call that matches both.

The generic cell rate algorithm keeps one number per key, the theoretical arrival time (TAT). A
call at ``now`` may go at ``max(now, TAT - tolerance)`` and moves the TAT on by one emission
interval (1 / rate), so calls are spread at the rate with bursts of up to ``burst`` at once.
Reservations are made when a call asks, which keeps waiting calls in order and the rate exact
however many wait.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from orchestrator.settings import SettingsError


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise ValueError(f"a rate must be a positive number of calls per second, not {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"a burst must be at least 1, not {self.burst}")


def parse_rate_limits(text: str | None) -> dict[str, RateLimit]:
    """``key=rate[/burst],...``; ValueError naming the part that is not."""
    limits: dict[str, RateLimit] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition("=")
        rate, _, burst = value.partition("/")
        try:
            limits[key.strip()] = RateLimit(float(rate), int(burst) if burst else 1)
        except ValueError:
            raise ValueError(f"{part!r} is not key=calls_per_second[/burst]") from None
        if not key.strip():
            raise ValueError(f"{part!r} names no connector or rate-limit key")
    return limits


def configured_throttles(text: str | None, clock: Callable[[], float]) -> Throttles | None:
    """The throttles ``ORCHESTRATOR_CONNECTOR_RATE_LIMITS`` asks for (None: none); SettingsError."""
    try:
        limits = parse_rate_limits(text)
    except ValueError as exc:
        raise SettingsError(f"ORCHESTRATOR_CONNECTOR_RATE_LIMITS: {exc}") from None
    return Throttles(limits, clock) if limits else None


class Cell:
    """The GCRA state of one key."""

    def __init__(self, limit: RateLimit) -> None:
        self.interval = 1.0 / limit.per_second
        self.tolerance = (limit.burst - 1) * self.interval
        self.tat = -math.inf

    def reserve(self, now: float) -> float:
        """Seconds the call asking at ``now`` must wait (0: go now); its slot is taken."""
        allowed = max(now, self.tat - self.tolerance)
        self.tat = max(self.tat, now) + self.interval
        return allowed - now


class Throttles:
    """The cells of one process, by key; ``wait(keys)`` sleeps until every key lets a call go."""

    def __init__(
        self,
        limits: Mapping[str, RateLimit],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = dict(limits)
        self._cells = {key: Cell(limit) for key, limit in self.limits.items()}
        self._clock = clock
        self._sleep = sleep
        self.waited = 0.0  # seconds calls spent throttled, in all

    def __bool__(self) -> bool:
        return bool(self._cells)

    async def wait(self, keys: Iterable[str]) -> float:
        """Reserve a slot under each key that has a limit and sleep as long as the longest asks."""
        now = self._clock()
        delay = max((self._cells[k].reserve(now) for k in keys if k in self._cells), default=0.0)
        if delay > 0:
            self.waited += delay
            await self._sleep(delay)
        return delay
