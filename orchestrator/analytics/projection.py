"""The analytics projection: follows the feed (``orchestrator.projections.runner``) into the store.

``apply`` folds each event into the in-memory aggregates (``fold.Aggregates``), loaded from the
store before the first event; ``flush`` writes the cells and tracks that changed, each cell
stamped with the position it counts through, and the SLA breaches found, before the runner saves
the checkpoint. ``reset`` empties the store for a rebuild from position 0. After a failed save
(or apply) the aggregates are reloaded from the store before the runner applies the events
again. The SLAs of each definition version are read once from the registry (``definitions``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from orchestrator.analytics.cells import from_row, to_row
from orchestrator.analytics.fold import DATA_TYPES, NO_SLAS, Aggregates, Breach, Slas, Track
from orchestrator.analytics.store import AnalyticsStore, BreachRow
from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.ports import UnknownWorkflow
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope
from schemas.expressions import ExpressionError, compile_expression, evaluate
from schemas.fields import Fields

NAME = "analytics"


def _dumps(body: Any) -> str:
    return orjson.dumps(body).decode()


Definitions = Callable[[str, int], Awaitable[WorkflowDefinition]]
FRESH_BREACH = 3600.0  # seconds: a breach that ended longer ago is history replayed, not reported


def kpi_of(expression: str) -> Callable[[Any], float | None]:
    """The KPI's value of an output: the expression over ``{"output": ...}`` when it gives a
    finite number (booleans and failures give None: not counted)."""
    compile_expression(expression)  # validated with the definition; fails early otherwise

    def value(output: Any) -> float | None:
        try:
            result = evaluate(expression, {"output": output})
        except ExpressionError:  # an output the expression cannot read: no value, never a failure
            return None
        if isinstance(result, bool) or not isinstance(result, int | float) or not math.isfinite(result):
            return None
        return float(result)

    return value


def slas_of(definition: WorkflowDefinition) -> Slas:
    """What a definition declares for analytics: SLAs and KPIs."""
    steps: dict[str, float] = {}
    pending = list(definition.steps)
    while pending:  # steps nested in parallel branches too
        step = pending.pop()
        if step.sla is not None:
            steps[step.name] = step.sla.seconds
        for branch in getattr(step, "branches", None) or []:
            pending.extend(branch.steps)
    kpis = {kpi.name: kpi_of(kpi.value) for kpi in definition.kpis}
    return Slas(definition.sla.seconds if definition.sla else None, steps, kpis)


def breach_row(breach: Breach) -> BreachRow:
    body = {"version": breach.version, "seconds": breach.seconds, "limit": breach.limit}
    return (breach.tenant, breach.workflow, breach.at, breach.execution_id, breach.step, _dumps(body))


class AnalyticsProjection:
    name = NAME
    page = 5000  # events per read and flush: a hot cell is written once per page
    interval = 1.0  # seconds between reads once caught up: one flush a second under load, not one per commit
    lean = DATA_TYPES  # pages of fields, the data of these types only (``apply_page``)

    def __init__(
        self,
        store: AnalyticsStore,
        definitions: Definitions | None = None,
        instruments: Instruments = NO_INSTRUMENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.instruments = instruments
        self.clock = clock
        self._definitions = definitions
        self._slas: dict[tuple[str, int], Slas] = {}
        self.aggregates = self._fresh()
        self._loaded = False

    def _fresh(self) -> Aggregates:
        return Aggregates(lambda workflow, version: self._slas.get((workflow, version), NO_SLAS))

    async def _load(self) -> None:
        cells, tracks = await self.store.load()
        self.aggregates = self._fresh()
        self.aggregates.load(
            dict(from_row(row) for row in cells),
            {execution_id: Track.from_json(orjson.loads(body)) for execution_id, body in tracks},
        )
        self._loaded = True

    async def _lookup(self, workflow: str, version: int) -> None:
        slas = NO_SLAS
        if self._definitions is not None:
            with contextlib.suppress(UnknownWorkflow):  # no longer registered: no SLAs
                slas = slas_of(await self._definitions(workflow, version))
        self._slas[(workflow, version)] = slas

    async def apply(self, position: int, envelope: Envelope) -> None:
        if not self._loaded:
            await self._load()
        if (envelope.workflow, envelope.workflowversion) not in self._slas:
            await self._lookup(envelope.workflow, envelope.workflowversion)
        try:
            self.aggregates.apply(position, envelope)
        except BaseException:
            self._loaded = False  # start again from what the store holds
            raise

    async def apply_page(self, items: Sequence[Fields]) -> None:
        """``apply`` for each event of a page given as fields (``lean``), the definitions of new
        versions read first."""
        if not self._loaded:
            await self._load()
        slas = self._slas
        for version in {(item[6], item[7]) for item in items} - slas.keys():
            await self._lookup(*version)
        apply = self.aggregates.apply_fields
        try:
            for item in items:
                apply(item)
        except BaseException:
            self._loaded = False
            raise

    async def flush(self) -> None:
        cells, tracks = self.aggregates.drain()
        breaches, self.aggregates.breaches = self.aggregates.breaches, []
        if not cells and not tracks:
            return
        try:
            await self.store.save(
                [to_row(key, cell) for key, cell in cells],
                [(execution_id, _dumps(track.to_json())) for execution_id, track in tracks],
                [breach_row(breach) for breach in breaches],
            )
        except BaseException:
            # The runner retries from the checkpoint: reload what the store holds, so the
            # events are counted again exactly where the failed save did not land.
            self._loaded = False
            raise
        self._report(breaches)

    def _report(self, breaches: list[Breach]) -> None:
        """Count the breaches saved (``orchestrator_sla_breaches_total``), the recent ones only:
        a rebuild or a catch-up replays old breaches, which must not fire alerts now."""
        fresh = self.clock() - FRESH_BREACH
        for breach in breaches:
            if breach.at >= fresh:
                self.instruments.sla_breached("step" if breach.step else "execution", breach.workflow)

    async def reset(self) -> None:
        await self.store.clear()
        self.aggregates = self._fresh()
        self._loaded = True
