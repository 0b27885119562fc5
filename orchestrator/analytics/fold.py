"""The analytics fold: events in feed order -> aggregate cells, plus what each open execution needs.

Pure and synchronous (the projection does the I/O around it). Each execution has a ``Track``: its
identity, when it started, the steps in progress and the spans of finished steps. Events of one
execution come in ``sequence`` order; one at or below the track's last sequence was counted
already (a feed may serve an append twice) and is ignored. A cell is touched only by events after
its ``through`` position, so replaying the feed after a restart counts nothing twice.

What each event counts (cell of the hour the event happened in):

- ``ExecutionStarted``: ``started`` on the execution cell.
- ``StepScheduled`` (a task attempt): ``attempts`` and ``calls:<connector>`` on the step cell.
- ``StepFailed`` with a retry: ``retries`` and ``error:<type>``; without one (final):
  ``failed`` and ``failed:<type>`` on the step cell, the step span ends.
- ``StepSucceeded``: ``succeeded``; histograms ``duration`` (this attempt, scheduled -> answer),
  ``elapsed`` (first attempt -> answer, retries included), and, when the outcome records what
  the attempt used (``resources.wall_seconds``), ``run`` (that) and ``queue`` (the rest).
  Every answered task attempt adds what it used (``_used``: wall and CPU seconds, peak memory,
  bytes), what cost is priced on.
- A terminal event: the status (``succeeded``, ``failed``, ``cancelled``) and ``duration`` on the
  execution cell; a failure also counts ``failed:<type>`` and ``failed_at:<step>``. The
  execution's critical path (``critical.py``) counts ``critical:<step>`` and sums
  ``critical_s:<step>`` (seconds on the path) and ``critical_wait_s`` (time between steps).
- SLAs (``slas(workflow, version)``): a step that ends, first attempt to outcome, or an execution
  that ends counts ``sla_checked`` and, over its limit, ``sla_breaches``, and adds a ``Breach``.
- KPIs: each succeeded execution adds each KPI's value (``kpi:<name>``) and counts it
  (``kpi_n:<name>``) on the execution cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from orchestrator.analytics.cells import (
    BUCKET_SECONDS,
    DAY_SECONDS,
    EXECUTION,
    Cell,
    CellKey,
    daily_bucket,
    day_of,
    is_daily,
)
from orchestrator.analytics.critical import WAIT, critical_path
from orchestrator.core import events as ev
from orchestrator.core.timefmt import parse_rfc3339
from schemas.envelope import Envelope
from schemas.fields import Fields

# Events that open a step's span (besides StepScheduled), and so let its duration be measured.
_OPENING = frozenset({ev.CHILD_STARTED, ev.EVENT_AWAITED, ev.PARALLEL_STARTED})
# The event types whose data the fold reads (a lean feed read decodes no other's).
DATA_TYPES = frozenset(
    {ev.STEP_SCHEDULED, ev.STEP_SUCCEEDED, ev.STEP_FAILED, ev.TIMER_SCHEDULED, *_OPENING, *ev.TERMINAL_TYPES}
)
CONTAINER = -1.0  # the attempt number of an open parallel step: its branches' steps are the spans
_new_key = tuple.__new__  # a CellKey without NamedTuple's Python-level __new__ (hot path)
CLOCK_SLACK = 0.05  # seconds a worker's measure may exceed the events' times (clocks of two processes)


class Slas(NamedTuple):
    """What a definition version declares for analytics: SLA seconds for the execution and per
    step, and KPIs (name -> a function of the output giving a number, or None)."""

    execution: float | None
    steps: dict[str, float]
    kpis: dict[str, Callable[[Any], float | None]] = {}


NO_SLAS = Slas(None, {})


class Breach(NamedTuple):
    """An execution (``step == ""``) or step that took longer than its SLA."""

    tenant: str
    workflow: str
    version: int
    execution_id: str
    step: str
    at: float  # when it ended
    seconds: float
    limit: float


@dataclass(slots=True)
class Track:
    """What the fold keeps of one execution between its events."""

    tenant: str
    workflow: str
    version: int
    started: float | None = None
    last_sequence: int = 0
    done: bool = False
    # step -> [this attempt's start, attempt number, first attempt's start]
    open: dict[str, list[float]] = field(default_factory=dict)
    spans: list[tuple[str, float, float]] = field(default_factory=list)  # finished steps

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"te": self.tenant, "w": self.workflow, "v": self.version, "q": self.last_sequence}
        if self.done:
            body["d"] = 1
            return body  # a finished track only guards against counting its events again
        body["st"] = self.started
        if self.open:
            body["o"] = self.open
        if self.spans:
            body["sp"] = self.spans
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Track:
        return cls(
            body["te"],
            body["w"],
            int(body["v"]),
            body.get("st"),
            int(body["q"]),
            bool(body.get("d")),
            {k: [float(x) for x in v] for k, v in body.get("o", {}).items()},
            [(str(s), float(a), float(b)) for s, a, b in body.get("sp", [])],
        )


class Aggregates:
    """Cells and tracks in memory, with what changed since the last ``drain``."""

    def __init__(self, slas: Callable[[str, int], Slas] = lambda workflow, version: NO_SLAS) -> None:
        self.slas = slas
        self.breaches: list[Breach] = []  # found since the last drain
        self.cells: dict[CellKey, Cell] = {}
        self.tracks: dict[str, Track] = {}
        self._dirty_cells: set[CellKey] = set()
        self._dirty_tracks: set[str] = set()
        self._dirty_days: set[CellKey] = set()  # roll-ups to write once their day is over
        self.today = 0  # the start of the newest hourly cell's day
        self._position = 0  # the feed position of the event being applied
        self.high = 0  # the highest position applied
        handlers: dict[str, Callable[[Track, str, dict[str, Any], float], None]] = {
            ev.EXECUTION_STARTED: self._started,
            ev.STEP_SCHEDULED: self._scheduled,
            ev.STEP_SUCCEEDED: self._succeeded,
            ev.STEP_FAILED: self._failed,
            ev.TIMER_SCHEDULED: self._opened,
        }
        handlers.update({kind: self._opened for kind in _OPENING})
        handlers.update({kind: self._ended for kind in ev.TERMINAL_TYPES})
        self._handlers = handlers  # event type -> what it counts; the others only move the track on

    def load(self, cells: dict[CellKey, Cell], tracks: dict[str, Track]) -> None:
        """Start from stored cells and tracks. A day whose roll-up is missing or older than one
        of its hours (a save that did not land whole) is rolled up again at the next drain."""
        self.cells, self.tracks = {}, tracks
        rolled: dict[CellKey, int] = {}
        newest: dict[CellKey, int] = {}  # the day's key -> the highest ``through`` of its hours
        for key, cell in cells.items():
            if is_daily(key.bucket):
                rolled[key] = cell.through
                continue
            self.cells[key] = cell
            self.today = max(self.today, key.bucket - key.bucket % DAY_SECONDS)
            day = key._replace(bucket=daily_bucket(day_of(key.bucket)))
            newest[day] = max(newest.get(day, 0), cell.through)
        for day, through in newest.items():
            if rolled.get(day, -1) < through:
                self._dirty_days.add(day)

    def drain(self) -> tuple[list[tuple[CellKey, Cell]], list[tuple[str, Track]]]:
        """The cells and tracks changed since the last drain; changed cells get ``through``.
        Plus the roll-ups of the days before the newest event's day that changed: the current
        day stays hourly until a later day begins (the reader merges its hours).
        (``breaches`` holds the breaches found meanwhile: the caller takes and empties it.)"""
        cells = []
        days = self._dirty_days
        for key in self._dirty_cells:
            cell = self.cells[key]
            cell.through = self.high
            cells.append((key, cell))
            days.add(_new_key(CellKey, (*key[:4], daily_bucket(key.bucket - key.bucket % DAY_SECONDS))))
        closed = daily_bucket(self.today)
        for day in [day for day in days if day.bucket < closed]:
            days.discard(day)
            cells.append((day, self._rolled_up(day)))
        tracks = [(execution_id, self.tracks[execution_id]) for execution_id in self._dirty_tracks]
        self._dirty_cells, self._dirty_tracks = set(), set()
        return cells, tracks

    def _rolled_up(self, day: CellKey) -> Cell:
        start = day_of(day.bucket)
        total = Cell()
        for hour in range(start, start + DAY_SECONDS, BUCKET_SECONDS):
            cell = self.cells.get(_new_key(CellKey, (*day[:4], hour)))
            if cell is not None:
                total.merge(cell)
        total.through = self.high
        return total

    def _cell(self, track: Track, step: str, at: float) -> Cell | None:
        """The cell to count in; None when it already counts this event (see ``through``)."""
        bucket = int(at // BUCKET_SECONDS) * BUCKET_SECONDS
        key = _new_key(CellKey, (track.tenant, track.workflow, track.version, step, bucket))
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
            if bucket - self.today >= DAY_SECONDS:
                self.today = bucket - bucket % DAY_SECONDS
        elif self._position <= cell.through:
            return None
        self._dirty_cells.add(key)
        return cell

    def apply(self, position: int, envelope: Envelope) -> None:
        self.apply_fields((position, envelope.type, envelope.subject, envelope.sequence, envelope.time,
                           envelope.tenant, envelope.workflow, envelope.workflowversion, envelope.data))  # fmt: skip

    def apply_fields(self, item: Fields) -> None:
        """Fold one event given as fields (``schemas.fields``; data needed for ``DATA_TYPES``)."""
        position, kind, execution_id, sequence, at_text, tenant, workflow, version, data = item
        track = self.tracks.get(execution_id)
        if track is None:
            track = self.tracks[execution_id] = Track(tenant, workflow, version)
        elif sequence <= track.last_sequence:
            return  # served again
        self._position = position
        self._execution_id = execution_id
        if position > self.high:
            self.high = position
        track.last_sequence = sequence
        self._dirty_tracks.add(execution_id)
        if track.done:
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(track, kind, data if isinstance(data, dict) else {}, parse_rfc3339(at_text))

    def _started(self, track: Track, kind: str, data: dict[str, Any], at: float) -> None:
        track.started = at
        if cell := self._cell(track, EXECUTION, at):
            cell.count("started")

    def _opened(self, track: Track, kind: str, data: dict[str, Any], at: float) -> None:
        if kind == ev.TIMER_SCHEDULED and data.get("purpose") != "wait":
            return
        step = str(data.get("step", ""))
        track.open[step] = [at, CONTAINER if kind == ev.PARALLEL_STARTED else 0.0, at]

    def _scheduled(self, track: Track, kind: str, data: dict[str, Any], at: float) -> None:
        step = str(data.get("step", ""))
        attempt = float(data.get("attempt", 1))
        previous = track.open.get(step)
        first = previous[2] if previous is not None and attempt > 1 else at
        track.open[step] = [at, attempt, first]
        if cell := self._cell(track, step, at):
            cell.count("attempts")
            cell.count(f"calls:{data.get('connector', '')}")

    def _succeeded(self, track: Track, kind: str, data: dict[str, Any], at: float) -> None:
        step = str(data.get("step", ""))
        opened = track.open.pop(step, None)
        cell = self._cell(track, step, at)
        self._closed(track, step, opened, at, cell)
        if cell is None:
            return
        cell.count("succeeded")
        if opened is None:
            return  # a choice or a step reused from a redriven execution: no duration
        run = _run_seconds(data)
        if opened[1] > 0:  # a task attempt
            _used(cell, opened, data, at, run)
        began, _, first = opened
        cell.observe("duration", at - began)
        cell.observe("elapsed", at - first)
        if run is not None and run <= at - began + CLOCK_SLACK:
            cell.observe("queue", max(at - began - run, 0.0))
            cell.observe("run", run)

    def _failed(self, track: Track, kind: str, data: dict[str, Any], at: float) -> None:
        step = str(data.get("step", ""))
        error = data.get("error") if isinstance(data.get("error"), dict) else {}
        error_type = str((error or {}).get("type", "unknown"))
        cell = self._cell(track, step, at)
        if cell:
            _used(cell, track.open.get(step), data, at)
        if "retry" in data:
            if cell:
                cell.count("retries")
                cell.count(f"error:{error_type}")
            return
        opened = track.open.pop(step, None)
        self._closed(track, step, opened, at, cell)
        if cell:
            cell.count("failed")
            cell.count(f"error:{error_type}")
            cell.count(f"failed:{error_type}")

    def _closed(self, track: Track, step: str, opened: list[float] | None, at: float, cell: Cell | None) -> None:
        """A step ended: keep its span (not a parallel container's); check the step's SLA."""
        if opened is None:
            return
        if opened[1] != CONTAINER:
            track.spans.append((step, opened[2], at))
        limit = self.slas(track.workflow, track.version).steps.get(step)
        if limit is not None and cell is not None:
            self._check(track, step, at - opened[2], limit, at, cell)

    def _check(self, track: Track, step: str, seconds: float, limit: float, at: float, cell: Cell) -> None:
        cell.count("sla_checked")
        if seconds > limit:
            cell.count("sla_breaches")
            breach = Breach(track.tenant, track.workflow, track.version, self._execution_id, step, at, seconds, limit)
            self.breaches.append(breach)

    def _ended(self, track: Track, kind: str, data: dict[str, Any], at: float) -> None:
        status = ev.STATUS_BY_TERMINAL_TYPE[kind]
        if cell := self._cell(track, EXECUTION, at):
            cell.count(status)
            if track.started is not None:
                cell.observe("duration", at - track.started)
                self._critical(track, at, cell)
                limit = self.slas(track.workflow, track.version).execution
                if limit is not None:
                    self._check(track, EXECUTION, at - track.started, limit, at, cell)
            if kind == ev.EXECUTION_SUCCEEDED:
                for name, kpi in self.slas(track.workflow, track.version).kpis.items():
                    value = kpi(data.get("output"))
                    if value is not None:
                        cell.count(f"kpi_n:{name}")
                        cell.add(f"kpi:{name}", value)
            if kind == ev.EXECUTION_FAILED:
                error = data.get("error") if isinstance(data.get("error"), dict) else {}
                cell.count(f"failed:{(error or {}).get('type', 'unknown')}")
                if data.get("step"):
                    cell.count(f"failed_at:{data['step']}")
        track.done = True
        track.open, track.spans = {}, []

    def _critical(self, track: Track, at: float, cell: Cell) -> None:
        """Count the steps on the execution's critical path and their seconds on it."""
        assert track.started is not None
        for segment in critical_path(track.spans, track.started, at):
            if segment.step is WAIT:
                cell.add("critical_wait_s", segment.seconds)
            else:
                cell.count(f"critical:{segment.step}")
                cell.add(f"critical_s:{segment.step}", segment.seconds)


def _run_seconds(data: dict[str, Any]) -> float | None:
    """The worker's own measure of the attempt (``resources.wall_seconds``), when recorded."""
    used = data.get("resources")
    run = used.get("wall_seconds") if isinstance(used, dict) else None
    return float(run) if isinstance(run, int | float) and run >= 0 else None


def _used(cell: Cell, opened: list[float] | None, data: dict[str, Any], at: float, run: float | None = None) -> None:
    """Add what an answered task attempt used: wall seconds (``wall_s``: the worker's measure,
    else scheduled -> answered), CPU seconds (``cpu_s``, ``cpu_measured``: attempts that had
    them), peak memory (histogram ``memory_mib``) and bytes in and out, when recorded. ``run``:
    ``_run_seconds(data)`` when the caller has it."""
    if run is None:
        run = _run_seconds(data)
    if run is None and opened is not None:
        run = max(at - opened[0], 0.0)
    if run is not None:
        cell.add("wall_s", run)
    used = data.get("resources")
    if not isinstance(used, dict):
        return
    cpu, memory = used.get("cpu_seconds"), used.get("peak_memory_bytes")
    if isinstance(cpu, int | float) and cpu >= 0:
        cell.add("cpu_s", float(cpu))
        cell.count("cpu_measured")
    if isinstance(memory, int | float) and memory >= 0:
        cell.observe("memory_mib", memory / 2**20)
    for name in ("bytes_in", "bytes_out"):
        value = used.get(name)
        if isinstance(value, int | float) and value >= 0:
            cell.add(name, float(value))
