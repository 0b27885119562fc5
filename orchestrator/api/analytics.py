"""Analytics routes: figures from the analytics projection's cells (docs/analytics.md).

``GET /api/v1/analytics/{overview,rates,failures,steps,retries,bottlenecks,cost,slas}``, each over the request's tenant
and a window (``since``, ``until``: RFC 3339 or a duration before now like ``7d``; the last 7
days by default), optionally one workflow and version. Every process answers from the same store.
``GET /api/v1/analytics/executions/{id}/critical-path`` computes one execution's path from its
events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.analytics import critical, forecast, prediction, queries
from orchestrator.analytics.cells import BUCKET_SECONDS, Cell, CellKey
from orchestrator.analytics.cost import Prices, PricesInvalid, cost
from orchestrator.analytics.degradation import Thresholds, degradations
from orchestrator.analytics.prediction import Sample
from orchestrator.analytics.reader import AnalyticsReader, Level, Window, WindowInvalid, seconds_of
from orchestrator.analytics.sketch import RELATIVE_ERROR
from orchestrator.api.errors import error_response
from orchestrator.api.requests import query_params, request_tenant
from orchestrator.api.routes import Permission, Route, path_param
from orchestrator.core.timefmt import parse_rfc3339, rfc3339
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime

PREFIX = "/api/v1/analytics"
TIME = r"^[0-9A-Za-z:.+-]{1,40}$"
EVERY = {"1h": 3600, "6h": 21600, "1d": 86400, "7d": 604800}
MAX_DAYS = 3660  # degradations: each window at most ten years
MAX_HISTORY_DAYS = 92  # forecast: a quarter of hourly history at most (the fit is quadratic-ish)
Query = Callable[[list[tuple[CellKey, Cell]], "AnalyticsParams"], Any]


class AnalyticsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str | None = Field(None, min_length=1, max_length=200)
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    since: str | None = Field(None, pattern=TIME, description="RFC 3339 time or a duration before now (7d)")
    until: str | None = Field(None, pattern=TIME, description="RFC 3339 time or a duration before now")
    every: str = Field("1h", pattern=r"^(1h|6h|1d|7d)$", description="rates: the period of each row")
    top: int = Field(20, ge=1, le=1000, description="retries, bottlenecks, slas: how many rows")
    price_wall_second: float = Field(0.0, ge=0, le=1e9, description="cost: per wall-second of task attempts")
    price_cpu_second: float = Field(0.0, ge=0, le=1e9, description="cost: per CPU-second measured")
    price_call: float = Field(0.0, ge=0, le=1e9, description="cost: per connector call")
    price_calls: str | None = Field(
        None, max_length=300, description="cost: per call of named connectors, e.g. http=0.002,python=0"
    )


# name -> (summary, the cells it needs, the figures)
class DegradationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str | None = Field(None, min_length=1, max_length=200)
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    recent: str = Field("24h", pattern=r"^[0-9]{1,6}[mhdw]$", description="the recent window, before now")
    baseline: str = Field("7d", pattern=r"^[0-9]{1,6}[mhdw]$", description="the baseline, before the recent window")
    alpha: float = Field(0.01, gt=0, lt=1, description="significance level of each test")
    min_samples: int = Field(10, ge=2, le=1_000_000)


class ForecastParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str | None = Field(None, min_length=1, max_length=200)
    history: str = Field("14d", pattern=r"^[0-9]{1,4}[hdw]$", description="history to fit on (at most 92 days)")
    horizon: int = Field(24, ge=1, le=24 * 14, description="hours to forecast")
    utilisation: float = Field(0.7, gt=0, lt=1, description="capacity: the target utilisation of task slots")


class ModelParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str = Field(min_length=1, max_length=200)
    sample: int = Field(1000, ge=10, le=10_000, description="the newest ended executions to learn from")
    top: int = Field(10, ge=1, le=100, description="how many causes")


QUERIES: dict[str, tuple[str, Level, Query]] = {
    "overview": ("Executions started and ended, success and failure rates, end-to-end duration "
                 "percentiles, per workflow and version.", "executions",
                 lambda cells, p: queries.overview(cells)),
    "rates": ("Outcomes and success/failure rates per period (every=1h|6h|1d|7d), oldest first.",
              "executions", lambda cells, p: {"every": p.every, "periods": queries.rates(cells, EVERY[p.every])}),
    "failures": ("Failures by error type and step: final step failures, failed attempts, failed "
                 "executions by error type and by the step they failed at.", "all",
                 lambda cells, p: queries.failures(cells)),
    "steps": ("Per step: attempts, outcomes, retry and failure rates, duration, elapsed, queue wait "
              "and run time p50/p95/p99.", "steps", lambda cells, p: {"steps": queries.steps(cells)}),
    "retries": ("Retry hot spots: the steps retried most, their retry rates and retried errors.",
                "steps", lambda cells, p: {"steps": queries.retries(cells, p.top)}),
    "bottlenecks": ("Per workflow, the steps on the critical path of ended executions, ranked by "
                    "their seconds on it (bottlenecks).", "all",
                    lambda cells, p: queries.bottlenecks(cells, p.top)),
    "kpis": ("The definitions' KPIs (numbers computed from each succeeded execution's output): "
             "count, sum and mean, and per period (every=1h|6h|1d|7d).", "executions",
             lambda cells, p: {"every": p.every, "kpis": queries.kpis(cells, EVERY[p.every])}),
    "cost": ("Cost per workflow, step and ended execution, and in total, at the prices given "
             "(per wall-second and CPU-second of task attempts, per connector call).", "all",
             lambda cells, p: cost(cells, Prices(p.price_wall_second, p.price_cpu_second, p.price_call,
                                                 Prices.parse_calls(p.price_calls)))),
}  # fmt: skip
ID = path_param("id", "Execution id.")


class AnalyticsApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", f"{PREFIX}/{name}", self._handler(level, query), Permission.ANALYTICS_READ,
                f"analytics{name.capitalize()}", summary, "200:AnalyticsResult 400 404",
                query=AnalyticsParams,
            )
            for name, (summary, level, query) in QUERIES.items()
        ] + [
            Route(
                "GET", f"{PREFIX}/slas", self.slas, Permission.ANALYTICS_READ, "analyticsSlas",
                "SLA checks and breaches per workflow and step, and the breaches (newest first, "
                "at most top).", "200:AnalyticsResult 400 404", query=AnalyticsParams,
            ),
            Route(
                "GET", f"{PREFIX}/degradations", self.degradations, Permission.ANALYTICS_READ,
                "analyticsDegradations",
                "Steps whose duration (Mann-Whitney U) or failure rate (two-proportion z) got worse in "
                "the recent window than in the baseline before it; flagged ones first.",
                "200:AnalyticsResult 400 404", query=DegradationParams,
            ),
            Route(
                "GET", f"{PREFIX}/forecast", self.forecast, Permission.ANALYTICS_READ, "analyticsForecast",
                "Starts per hour forecast (Holt-Winters, with its held-out error beside a seasonal-naive "
                "one) and the task slots and workers its peak needs (Little's law).",
                "200:AnalyticsResult 400 404", query=ForecastParams,
            ),
            Route(
                # It shows values of inputs: a payload read, not only figures.
                "GET", f"{PREFIX}/failure-model", self.failure_model, Permission.PAYLOADS_READ,
                "analyticsFailureModel",
                "A failure model trained now on the workflow's newest ended executions (naive Bayes "
                "over input fields): held-out accuracy beside the naive baseline, and the input "
                "features failures share (top failing input fields).",
                "200:AnalyticsResult 400 404", query=ModelParams,
            ),
            Route(
                "GET", f"{PREFIX}/executions/{{id}}/critical-path", self.critical_path,
                Permission.ANALYTICS_READ, "analyticsCriticalPath",
                "The steps (and waits between them) that bounded one execution's end-to-end time.",
                "200:AnalyticsResult 404", (ID,),
            ),
        ]  # fmt: skip

    def _reader(self) -> AnalyticsReader:
        if self.runtime.analytics is None:
            raise web.HTTPNotFound(reason="Analytics Unavailable", text="this event log keeps no analytics")
        return self.runtime.analytics

    async def slas(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        params = query_params(request, AnalyticsParams)
        reader = self._reader()
        try:
            window = reader.window(params.since, params.until)
        except WindowInvalid as exc:
            return error_response(400, "invalid_window", str(exc))
        cells = await reader.cells(tenant, window, params.workflow, params.version, daily=True)
        breaches = await reader.breaches(tenant, window, params.workflow, params.top)
        body = {**scope(tenant, window, params, reader), "slas": queries.slas(cells), "breaches": breaches}
        return web.json_response(body)

    async def degradations(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        params = query_params(request, DegradationParams)
        reader = self._reader()
        hour = BUCKET_SECONDS  # whole hours: the recent one up to now, the baseline right before it
        end = int(reader.clock() // hour) * hour + hour
        try:
            recent_s, baseline_s = seconds_of(params.recent, MAX_DAYS * 86400), seconds_of(params.baseline, MAX_DAYS * 86400)
        except WindowInvalid as exc:
            return error_response(400, "invalid_parameter", str(exc))
        recent = Window(end - -(-recent_s // hour) * hour, end)
        baseline = Window(recent.since - -(-baseline_s // hour) * hour, recent.since)
        found = degradations(
            await reader.cells(tenant, recent, params.workflow, params.version, daily=True),
            await reader.cells(tenant, baseline, params.workflow, params.version, daily=True),
            Thresholds(alpha=params.alpha, min_samples=params.min_samples),
        )
        return web.json_response({
            "tenant": tenant, "workflow": params.workflow, "version": params.version,
            "recent": {"since": rfc3339(recent.since, "seconds"), "until": rfc3339(recent.until, "seconds")},
            "baseline": {"since": rfc3339(baseline.since, "seconds"), "until": rfc3339(baseline.until, "seconds")},
            "alpha": params.alpha, "flagged": sum(1 for r in found if r["flagged"]), "tests": found,
        })  # fmt: skip

    async def forecast(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        params = query_params(request, ForecastParams)
        reader = self._reader()
        hour = BUCKET_SECONDS
        end = int(reader.clock() // hour) * hour  # the current hour is not over: not in the series
        try:
            history = seconds_of(params.history, MAX_HISTORY_DAYS * 86400)
        except WindowInvalid as exc:
            return error_response(400, "invalid_parameter", str(exc))
        window = Window(end - -(-history // hour) * hour, end)
        cells = await reader.cells(tenant, Window(window.since, end + hour), params.workflow)
        per_hour = queries.by(queries.executions_only(cells), "bucket", histograms=queries.NONE)
        series = [float(per_hour[(b,)].counts.get("started", 0)) if (b,) in per_hour else 0.0
                  for b in range(window.since, window.until, hour)]  # fmt: skip
        predicted = forecast.starts_forecast(series, params.horizon)
        executions = queries.by(queries.executions_only(cells), histograms=queries.NONE).get((), Cell())
        steps = queries.by(queries.steps_only(cells), histograms=queries.NONE).get((), Cell())
        ended = sum(executions.counts.get(s, 0) for s in queries.ENDED)
        seconds = steps.sums.get("wall_s", 0.0) / ended if ended else 0.0  # W: worker seconds each
        peak = max(predicted["forecast"], default=0.0)
        slots = self.runtime.settings.worker_concurrency
        return web.json_response({
            "tenant": tenant, "workflow": params.workflow, "since": rfc3339(window.since, "seconds"),
            "until": rfc3339(window.until, "seconds"), **predicted,
            "capacity": forecast.capacity(peak, seconds, utilisation=params.utilisation, slots_per_worker=slots),
        })  # fmt: skip

    async def failure_model(self, request: web.Request) -> web.Response:
        tenant = request_tenant(request)
        params = query_params(request, ModelParams)
        samples: list[Sample] = []
        for status in ("failed", "succeeded"):  # the newest ``sample`` of each, newest first
            query = ExecutionQuery(workflow=params.workflow, status=status, limit=min(params.sample, 1000))
            taken = 0
            while taken < params.sample:
                page = await self.runtime.list_executions(query, tenant=tenant)
                for summary in page.items[: params.sample - taken]:
                    first = await self.runtime.history(summary.execution_id, limit=1, tenant=tenant)
                    data = first[0].data if first and isinstance(first[0].data, dict) else {}
                    samples.append(Sample(summary.started_at, data.get("input"), status == "failed"))
                    taken += 1
                if page.next_cursor is None or not page.items:
                    break
                query = replace(query, cursor=page.next_cursor)
        newest = sorted(samples, key=lambda s: s.started_at)[-params.sample :]
        report = prediction.failure_model(newest, params.top)
        return web.json_response({"tenant": tenant, "workflow": params.workflow, **report})

    async def critical_path(self, request: web.Request) -> web.Response:
        tenant, execution_id = request_tenant(request), request.match_info["id"]
        events = await self.runtime.history(execution_id, tenant=tenant)  # 404 when not the tenant's
        start, end, spans = critical.spans_of(events)
        running = end is None
        if start is None:
            return error_response(404, "unknown_execution", f"no execution {execution_id}")
        if end is None:
            end = max(parse_rfc3339(e.time) for e in events)
        segments = critical.critical_path(spans, start, end)
        total = end - start
        return web.json_response({
            "tenant": tenant,
            "execution_id": execution_id,
            "workflow": events[0].workflow,
            "version": events[0].workflowversion,
            "running": running,
            "seconds": round(total, 6),
            "path": [segment.to_dict(total) for segment in segments],
            "by_step": {step: round(s, 6) for step, s in critical.summary(segments).items()},
        })  # fmt: skip

    def _handler(self, level: Level, query: Query) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            tenant = request_tenant(request)
            params = query_params(request, AnalyticsParams)
            reader = self.runtime.analytics
            if reader is None:
                return error_response(404, "analytics_unavailable", "this event log keeps no analytics")
            try:
                window = reader.window(params.since, params.until)
                Prices.parse_calls(params.price_calls)
            except WindowInvalid as exc:
                return error_response(400, "invalid_window", str(exc))
            except PricesInvalid as exc:
                return error_response(400, "invalid_parameter", f"price_calls: {exc}")
            hourly = query is QUERIES["rates"][2] or query is QUERIES["kpis"][2]
            daily = not hourly or EVERY[params.every] >= 86400
            cells = await reader.cells(tenant, window, params.workflow, params.version, level, daily)
            return web.json_response({**scope(tenant, window, params, reader), **query(cells, params)})

        return handle


def scope(tenant: str, window: Window, params: AnalyticsParams, reader: AnalyticsReader) -> dict[str, Any]:
    """What an answer covers: tenant, workflow, version and the window in whole hours."""
    return {
        "tenant": tenant,
        "workflow": params.workflow,
        "version": params.version,
        "since": rfc3339(window.since, "seconds"),
        "until": rfc3339(window.until, "seconds"),
        "percentile_relative_error": round(RELATIVE_ERROR, 4),
    }
