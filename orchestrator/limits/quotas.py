"""Quotas per tenant: running executions, starts per minute, payload size, events per execution,
stored bytes.

Configured in a file (``ORCHESTRATOR_QUOTAS_FILE``, YAML or JSON), tenant -> limits, with ``"*"``
for what a tenant does not set itself::

    "*":  {running: 1000, starts_per_minute: 6000, payload_bytes: 1048576}
    acme: {running: 50, starts_per_minute: 120}

- ``running``: a hard limit, checked against the tenant's running executions in the event log,
  counted at most every ``REFRESH_SECONDS`` per tenant (so two processes may overshoot it by the
  starts of that interval). Past it: :class:`QuotaExceeded` (403, ``quota: running``).
- ``starts_per_minute``: a rate over a sliding minute, counted per process. Past it:
  :class:`StartRateExceeded` (429 with ``Retry-After``; an ``Overloaded``, so queue triggers retry).
- ``payload_bytes``: a start's input or a signal's payload as JSON, at most this many bytes. Past
  it: QuotaExceeded (403, ``quota: payload_bytes``); permanent, so queue triggers dead-letter it.
- ``events_per_execution``: the length of one execution's history. The engine asks
  :meth:`Quotas.event_limit`; a signal or start that would pass it is refused
  (:meth:`Quotas.refuse_events`, 403), the execution's own progress fails it with ``quota.events``.
- ``stored_bytes``: the tenant's stored events as bytes (the envelopes' serialized size), counted
  by scanning the log once per process and then from this process's commits
  (:meth:`Quotas.on_committed`). Past it: QuotaExceeded (403, ``quota: stored_bytes``) for starts.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from orchestrator.core.state import ExecutionState
from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.limits.start_rate import StartRates
from orchestrator.ports import EventLog, Overloaded
from schemas import strict_json
from schemas.envelope import Envelope

KINDS = ("running", "starts_per_minute", "payload_bytes", "events_per_execution", "stored_bytes")
EVERY_TENANT = "*"
REFRESH_SECONDS = 2.0
WINDOW_SECONDS = 60.0
SCAN_PAGE = 1000  # events read at a time when counting stored bytes


class QuotaExceeded(Exception):
    """A hard quota: 403 naming it. ``permanent``: the same request will always exceed it."""

    def __init__(self, quota: str, tenant: str, limit: int, usage: int, *, permanent: bool) -> None:
        super().__init__(f"tenant {tenant!r} is at its {quota} quota ({usage} of at most {limit})")
        self.quota, self.tenant, self.limit, self.usage, self.permanent = quota, tenant, limit, usage, permanent


class StartRateExceeded(Overloaded):
    """The tenant's starts per minute: 429 with Retry-After."""

    def __init__(self, tenant: str, limit: int, retry_after: float) -> None:
        super().__init__(f"tenant {tenant!r} is at its starts_per_minute quota ({limit})", retry_after)
        self.quota, self.tenant, self.limit = "starts_per_minute", tenant, limit


class QuotaFileError(ValueError):
    """The quotas file cannot be read or is not tenant -> {kind: positive integer}."""


@dataclass(frozen=True, slots=True)
class TenantQuotas:
    running: int | None = None
    starts_per_minute: int | None = None
    payload_bytes: int | None = None
    events_per_execution: int | None = None
    stored_bytes: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return {kind: getattr(self, kind) for kind in KINDS}


def parse_quotas(data: Any, source: str = "quotas") -> dict[str, TenantQuotas]:
    if not isinstance(data, Mapping):
        raise QuotaFileError(f"{source}: must map tenants (or '*') to their limits")
    found: dict[str, TenantQuotas] = {}
    for tenant, limits in data.items():
        if not isinstance(limits, Mapping):
            raise QuotaFileError(f"{source}: the limits of {tenant!r} must be a mapping")
        for kind, value in limits.items():
            if kind not in KINDS:
                raise QuotaFileError(f"{source}: {tenant}.{kind}: unknown quota; known: {', '.join(KINDS)}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise QuotaFileError(f"{source}: {tenant}.{kind}: must be a positive integer")
        found[str(tenant)] = TenantQuotas(**{str(k): v for k, v in limits.items()})
    return found


def load_quotas(path: str | None) -> dict[str, TenantQuotas]:
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise QuotaFileError(f"cannot read quotas file {path}: {exc}") from None
    return parse_quotas(data, path)


class CommitLike(Protocol):
    """What the quotas read of a commit (``orchestrator.engine.engine.Committed``)."""

    @property
    def after(self) -> ExecutionState: ...

    @property
    def events(self) -> Sequence[Envelope]: ...


class QuotaHooks(Protocol):
    """The engine's seams the quotas use."""

    event_budget: Any
    observers: list[Callable[[Any], Awaitable[None]]]


@dataclass(slots=True)
class _Running:
    count: int = 0
    read_at: float = -math.inf
    counting: asyncio.Future[int] | None = None  # the count in flight


@dataclass
class Quotas:
    """The quotas of one process and their usage; ``count_running(tenant, at_most)`` reads the
    event log (the runtime passes it)."""

    limits: dict[str, TenantQuotas]
    clock: Callable[[], float]
    count_running: Callable[[str, int], Awaitable[int]]
    instruments: Instruments = NO_INSTRUMENTS  # usage and refusals (docs/observability.md)
    log: EventLog | None = None  # scanned once for ``stored_bytes``
    start_rates: StartRates = field(default_factory=StartRates)  # definitions' ``rate_limit``
    _starts: dict[str, deque[float]] = field(default_factory=dict)
    _running: dict[str, _Running] = field(default_factory=dict)
    _stored: dict[str, int] | None = None  # tenant -> stored event bytes, once scanned

    def of(self, tenant: str) -> TenantQuotas:
        """The tenant's own limits, each one it does not name taken from ``"*"``."""
        every = self.limits.get(EVERY_TENANT, TenantQuotas())
        own = self.limits.get(tenant)
        if own is None:
            return every
        return TenantQuotas(**{k: getattr(own, k) if getattr(own, k) is not None else getattr(every, k) for k in KINDS})

    def attach(self, engine: QuotaHooks) -> None:
        """Have ``engine`` ask the events-per-execution limit and report its commits' bytes."""
        if any(limits.events_per_execution is not None for limits in self.limits.values()):
            engine.event_budget = self
        if any(limits.stored_bytes is not None for limits in self.limits.values()):
            engine.observers.append(self.on_committed)

    async def on_committed(self, committed: CommitLike) -> None:
        if committed.events:
            self.count_stored(committed.after.tenant, sum(len(e.to_bytes()) for e in committed.events))

    def __bool__(self) -> bool:
        return bool(self.limits)

    def check_payload(self, tenant: str, value: Any) -> None:
        limit = self.of(tenant).payload_bytes
        if limit is not None and value is not None:
            size = strict_json.encoded_size(value)
            if size > limit:
                raise QuotaExceeded("payload_bytes", tenant, limit, size, permanent=True)

    async def check_start(self, tenant: str, value: Any) -> None:
        """Every quota a new start must pass; the start is counted in the rate when it passes.
        Each refusal, and the usage each check saw, is reported to the instruments."""
        try:
            await self._check_start(tenant, value)
        except StartRateExceeded:
            self.instruments.quota_refused(tenant, "starts_per_minute", 429)
            raise
        except QuotaExceeded as exc:
            self.instruments.quota_refused(tenant, exc.quota, 403)
            raise

    async def _check_start(self, tenant: str, value: Any) -> None:
        quotas = self.of(tenant)
        self.check_payload(tenant, value)
        now = self.clock()
        starts = self._starts.setdefault(tenant, deque())
        while starts and starts[0] <= now - WINDOW_SECONDS:
            starts.popleft()
        if quotas.starts_per_minute is not None:
            self.instruments.quota_usage(tenant, "starts_per_minute", len(starts))
            if len(starts) >= quotas.starts_per_minute:
                retry = starts[0] + WINDOW_SECONDS - now
                raise StartRateExceeded(tenant, quotas.starts_per_minute, max(retry, 0.0))
        if quotas.running is not None:
            running = await self.running(tenant, quotas.running)
            self.instruments.quota_usage(tenant, "running", running)
            if running >= quotas.running:
                raise QuotaExceeded("running", tenant, quotas.running, running, permanent=False)
            self._running[tenant].count += 1  # this start, until the next count
        if quotas.stored_bytes is not None:
            stored = await self.stored(tenant)
            if stored >= quotas.stored_bytes:
                raise QuotaExceeded("stored_bytes", tenant, quotas.stored_bytes, stored, permanent=False)
        starts.append(now)

    # -- events per execution (asked by the engine) ---------------------------------------

    def event_limit(self, tenant: str) -> int | None:
        """The longest history an execution of ``tenant`` may have (None: no limit)."""
        return self.of(tenant).events_per_execution

    def refuse_events(self, tenant: str, limit: int, usage: int) -> Exception:
        """What the engine raises for a start or signal whose events would pass the limit."""
        return QuotaExceeded("events_per_execution", tenant, limit, usage, permanent=True)

    # -- stored bytes ---------------------------------------------------------------------

    async def stored(self, tenant: str) -> int:
        """The tenant's stored event bytes: the log scanned on first use, then this process's commits."""
        if self._stored is None:
            self._stored = await stored_bytes_by_tenant(self.log) if self.log is not None else {}
        return self._stored.get(tenant, 0)

    def count_stored(self, tenant: str, size: int) -> None:
        """Add committed bytes (an engine observer calls it; nothing before the first scan)."""
        if self._stored is not None:
            self._stored[tenant] = self._stored.get(tenant, 0) + size

    def forget_stored(self) -> None:
        """Scan again on next use (after retention deleted histories)."""
        self._stored = None

    async def running(self, tenant: str, at_most: int) -> int:
        """The tenant's running executions, counted at most every REFRESH_SECONDS; concurrent
        starts share one count in flight rather than each listing the log."""
        cached = self._running.setdefault(tenant, _Running())
        now = self.clock()
        if now - cached.read_at >= REFRESH_SECONDS:
            if cached.counting is None:
                cached.counting = asyncio.ensure_future(self.count_running(tenant, at_most))
            counting = cached.counting
            try:
                count = await asyncio.shield(counting)
            except BaseException:
                if cached.counting is counting and counting.done():
                    cached.counting = None  # failed: the next start counts again
                raise
            if cached.counting is counting:  # the first one back stores it; the others add to it
                cached.counting = None
                cached.count, cached.read_at = count, now
        return cached.count

    async def usage(self, tenant: str) -> dict[str, Any]:
        """Each quota of ``tenant`` with its current usage (``GET /api/v1/quotas``)."""
        quotas = self.of(tenant)
        now = self.clock()
        starts = [t for t in self._starts.get(tenant, ()) if t > now - WINDOW_SECONDS]
        running_limit = quotas.running
        running = await self.count_running(tenant, running_limit or 10_000)
        return {
            "tenant": tenant,
            "quotas": {
                "running": {"limit": running_limit, "usage": running},
                "starts_per_minute": {"limit": quotas.starts_per_minute, "usage": len(starts), "scope": "this process"},
                "payload_bytes": {"limit": quotas.payload_bytes},
                "events_per_execution": {"limit": quotas.events_per_execution, "scope": "each execution"},
                "stored_bytes": {"limit": quotas.stored_bytes, "usage": await self.stored(tenant)},
            },
        }


async def stored_bytes_by_tenant(log: EventLog) -> dict[str, int]:
    """Every tenant's stored events as serialized envelope bytes, by reading every history."""
    found: dict[str, int] = {}
    async for execution_id in log.execution_ids():
        after = 0
        while page := await log.read(execution_id, after, SCAN_PAGE):
            for envelope in page:
                found[envelope.tenant] = found.get(envelope.tenant, 0) + len(envelope.to_bytes())
            after = page[-1].sequence
    return found
