"""Analytics in the embedded mode on SQLite: real executions, figures over HTTP and the CLI.

A connector fails ``pay`` once per order with ``http.503`` (retried) and fails ``ship`` for good
for every fourth order; the routes answer per tenant, the CLI prints the same figures, bad
windows are clear 400s.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.base import Connectors
from orchestrator.analytics.projection import NAME
from orchestrator.ports import ConnectorError, ExecutionQuery, StepCall
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow, retry
from schemas.definition import Kpi, Sla
from tests.e2e.serverproc import REPO, cli_env
from tests.fake_sources import eventually

Client = TestClient[web.Request, web.Application]
ORDERS = 8


class Shop:
    name = "shop"

    def __init__(self) -> None:
        self.paid: set[str] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        if call.step == "pay" and call.execution_id not in self.paid:
            self.paid.add(call.execution_id)
            raise ConnectorError("http.503", "busy")
        await asyncio.sleep(0.01)  # 10 ms: longer than ship's SLA
        if call.step == "ship" and call.args["n"] % 4 == 3:
            raise ConnectorError("ship.refused", "no", retryable=False)
        return {"ok": True}


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(auth=False, event_log_url=f"sqlite:///{tmp_path}/analytics.db")
    async with Runtime(settings, connectors=Connectors([Shop()])) as runtime:
        flow = (
            Workflow("order")
            .task("pay", "shop", retry=retry(max_attempts=3, initial_seconds=0.01))
            .task("ship", "shop", input={"n": "input.n"}, sla={"seconds": 0.001})
            .succeed("done")
            .build()
        )
        kpis = [Kpi(name="orders", value="`1`"), Kpi(name="ok", value="output.ok")]  # ok is a boolean
        await runtime.register(flow.model_copy(update={"sla": Sla(seconds=60), "kpis": kpis}))
        for n in range(ORDERS):
            started = await runtime.start_execution("order", {"n": n})
            await runtime.wait(started.execution_id, timeout=10)
        head = await runtime.feed.head()
        await eventually(lambda: runtime.projections.positions.get(NAME, 0) >= head, timeout=10)
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


async def test_the_routes_answer_with_the_figures_of_the_executions(client: Client) -> None:
    overview = await answer(await client.get("/api/v1/analytics/overview"), 200)
    assert (overview["started"], overview["succeeded"], overview["failed"]) == (ORDERS, 6, 2)
    assert overview["failure_rate"] == 0.25
    assert overview["workflows"][0]["workflow"] == "order"

    steps = {s["step"]: s for s in (await answer(await client.get("/api/v1/analytics/steps"), 200))["steps"]}
    pay, ship = steps["pay"], steps["ship"]
    assert (pay["attempts"], pay["retries"], pay["succeeded"]) == (2 * ORDERS, ORDERS, ORDERS)
    assert (ship["attempts"], ship["succeeded"], ship["failed"]) == (ORDERS, 6, 2)
    assert pay["run"]["count"] == ORDERS and pay["run"]["p50"] >= 0.005  # the worker's own time
    assert pay["queue"]["count"] == ORDERS and pay["queue"]["p50"] >= 0

    failures = await answer(await client.get("/api/v1/analytics/failures"), 200)
    assert failures["by_type"] == {"ship.refused": 2}
    assert failures["steps"] == [{"workflow": "order", "step": "ship", "type": "ship.refused", "count": 2}]

    hot = (await answer(await client.get("/api/v1/analytics/retries"), 200))["steps"]
    assert [(h["step"], h["retries"], h["errors"]) for h in hot] == [("pay", ORDERS, {"http.503": ORDERS})]

    rates = await answer(await client.get("/api/v1/analytics/rates", params={"every": "1d"}), 200)
    assert sum(p["started"] for p in rates["periods"]) == ORDERS


async def test_sla_breaches_bottlenecks_and_a_critical_path(runtime: Runtime, client: Client) -> None:
    slas = await answer(await client.get("/api/v1/analytics/slas"), 200)
    rows = {row["step"]: row for row in slas["slas"]}
    assert (rows["ship"]["checked"], rows["ship"]["breaches"]) == (ORDERS, ORDERS)  # 1 ms: every one
    assert (rows[None]["checked"], rows[None]["breaches"]) == (ORDERS, 0)  # 60 s: none
    assert len(slas["breaches"]) == ORDERS and {b["step"] for b in slas["breaches"]} == {"ship"}
    assert all(b["seconds"] > b["limit"] == 0.001 for b in slas["breaches"])

    [workflow] = (await answer(await client.get("/api/v1/analytics/bottlenecks"), 200))["workflows"]
    assert workflow["executions"] == ORDERS
    assert {row["step"] for row in workflow["steps"]} == {"pay", "ship"}
    assert {row["step"]: row["on_path"] for row in workflow["steps"]}["pay"] == ORDERS

    execution_id = (await runtime.list_executions(ExecutionQuery(limit=1))).items[0].execution_id
    one = await answer(await client.get(f"/api/v1/analytics/executions/{execution_id}/critical-path"), 200)
    assert one["running"] is False and one["workflow"] == "order"
    assert [s["step"] for s in one["path"] if s["step"]][:2] == ["pay", "ship"]
    assert abs(sum(s["seconds"] for s in one["path"]) - one["seconds"]) < 1e-3
    missing = await answer(await client.get("/api/v1/analytics/executions/nope/critical-path"), 404)
    assert missing["error"]["code"] == "unknown_execution"
    other = await client.get(
        f"/api/v1/analytics/executions/{execution_id}/critical-path", headers={"X-Orchestrator-Tenant": "other"}
    )
    assert other.status == 404  # another tenant's execution


async def test_kpis_over_outputs(client: Client) -> None:
    found = await answer(await client.get("/api/v1/analytics/kpis", params={"every": "1d"}), 200)
    assert [(k["kpi"], k["count"], k["sum"]) for k in found["kpis"]] == [("orders", 6, 6.0)]
    assert sum(p["count"] for p in found["kpis"][0]["periods"]) == 6


async def test_cost_at_the_prices_asked_for(client: Client) -> None:
    priced = {"price_wall_second": "1", "price_call": "0.5", "price_calls": "shop=0.25"}
    answer_ = await answer(await client.get("/api/v1/analytics/cost", params=priced), 200)
    [order] = answer_["workflows"]
    assert order["calls"] == 3 * ORDERS  # pay twice, ship once per order
    assert order["cost"] == pytest.approx(order["wall_seconds"] + 0.25 * 3 * ORDERS, abs=1e-5)
    assert order["wall_seconds"] >= 0.01 * 2 * ORDERS  # the second pay and ship sleep 10 ms
    assert answer_["cost_per_execution"] == pytest.approx(order["cost"] / ORDERS, abs=1e-5)
    bad = await answer(await client.get("/api/v1/analytics/cost", params={"price_calls": "shop"}), 400)
    assert bad["error"]["code"] == "invalid_parameter"


async def test_figures_are_per_tenant_and_windowed(client: Client) -> None:
    other = await answer(await client.get("/api/v1/analytics/overview", headers={"X-Orchestrator-Tenant": "other"}), 200)
    assert other["tenant"] == "other" and other["started"] == 0
    past = await answer(await client.get("/api/v1/analytics/overview", params={"since": "60d", "until": "30d"}), 200)
    assert past["started"] == 0
    one = await answer(await client.get("/api/v1/analytics/steps", params={"workflow": "nope"}), 200)
    assert one["steps"] == []


async def test_bad_parameters_are_clear_errors(client: Client) -> None:
    for params, code in (
        ({"since": "yesterday"}, "invalid_window"),
        ({"since": "1d", "until": "2d"}, "invalid_window"),
        ({"every": "5m"}, "invalid_parameter"),
        ({"version": "0"}, "invalid_parameter"),
        ({"colour": "red"}, "invalid_parameter"),
        ({"since": "999999w"}, "invalid_window"),
        ({"until": "9999-01-01T00:00:00Z"}, "invalid_window"),
    ):
        body = await answer(await client.get("/api/v1/analytics/overview", params=params), 400)
        assert body["error"]["code"] == code, params


async def cli(client: Client, *args: str) -> tuple[int, str]:
    env = {**cli_env("memory://"), "ORCHESTRATOR_URL": str(client.make_url("")).rstrip("/")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert b"Traceback" not in err, err
    return process.returncode or 0, out.decode() + err.decode()


async def test_the_cli_prints_the_same_figures(client: Client) -> None:
    code, text = await cli(client, "analytics", "steps", "--json", "--workflow", "order")
    assert code == 0
    assert {s["step"]: s["retries"] for s in json.loads(text)["steps"]} == {"pay": ORDERS, "ship": 0, "done": 0}
    code, table = await cli(client, "analytics", "retries")
    assert code == 0 and "pay" in table and "http.503: 8" in table
    code, table = await cli(client, "analytics", "overview")
    assert code == 0 and "order" in table and "25.0%" in table
    code, table = await cli(client, "analytics", "slas")
    assert code == 0 and table.count("ship") >= ORDERS and "(execution)" in table
    code, table = await cli(client, "analytics", "bottlenecks")
    assert code == 0 and "pay" in table and "ship" in table
    code, table = await cli(client, "analytics", "cost", "--price-calls", "shop=1")
    assert code == 0 and f"total {3 * ORDERS}.0 for {ORDERS} executions" in table
    code, table = await cli(client, "analytics", "degradations", "--all")
    assert code == 0 and "flagged of" in table
    code, table = await cli(client, "analytics", "forecast", "--horizon", "3")
    assert code == 0 and "Holt-Winters" in table and "capacity:" in table
    code, text = await cli(client, "analytics", "critical-path", "nope")
    assert code == 1 and "unknown_execution" in text
    code, text = await cli(client, "analytics", "failures", "--since", "someday")
    assert code == 1 and "invalid_window" in text


async def test_a_planted_degradation_is_flagged_over_http() -> None:
    from orchestrator.analytics.cells import to_row
    from tests.unit.test_analytics_degradation import DAY, T0, planted

    recent, baseline = planted()
    settings = Settings(auth=False, event_log_url="memory://")
    async with Runtime(settings, clock=lambda: T0 + 8 * DAY - 1) as runtime:
        assert runtime.analytics is not None
        await runtime.analytics.store.save([to_row(k, c) for k, c in recent + baseline], [], [])
        async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
            found = await answer(await client.get("/api/v1/analytics/degradations", params={"recent": "1d"}), 200)
            assert found["recent"]["since"] == "2026-01-08T00:00:00Z" and found["baseline"]["since"] == "2026-01-01T00:00:00Z"
            flagged = {(t["step"], t["kind"]) for t in found["tests"] if t["flagged"]}
            assert {("charge", "duration"), ("ship", "failure_rate")} <= flagged
            assert not any(step == "pack" for step, _ in flagged)
            for params in ({"recent": "yesterday"}, {"alpha": "2"}, {"baseline": "0.5d"}, {"recent": "999999w"}):
                body = await answer(await client.get("/api/v1/analytics/degradations", params=params), 400)
                assert body["error"]["code"] == "invalid_parameter"


async def test_forecast_and_capacity(client: Client) -> None:
    answer_ = await answer(await client.get("/api/v1/analytics/forecast", params={"horizon": "6"}), 200)
    assert answer_["forecast"] == [0.0] * 6  # every start is in the current hour, not yet in the series
    assert answer_["history_hours"] == 14 * 24 and answer_["holdout"]["hours"] == 24
    plan = answer_["capacity"]
    assert plan["slots_per_worker"] == 64 and plan["worker_seconds_per_execution"] > 0.01
    assert plan["workers"] in (0, 1)
    for params in ({"utilisation": "1"}, {"history": "9999w"}):
        bad = await answer(await client.get("/api/v1/analytics/forecast", params=params), 400)
        assert bad["error"]["code"] == "invalid_parameter"


async def test_a_failure_model_from_the_recorded_inputs(client: Client) -> None:
    report = await answer(await client.get("/api/v1/analytics/failure-model", params={"workflow": "order"}), 200)
    assert report["samples"] == ORDERS and report["workflow"] == "order"
    if report["trained"]:
        assert 0 <= report["accuracy"] <= 1 and 0 <= report["baseline_accuracy"] <= 1
        assert all(cause["feature"].startswith("n in q") for cause in report["causes"])
    missing = await answer(await client.get("/api/v1/analytics/failure-model"), 400)
    assert missing["error"]["code"] == "invalid_parameter"


async def test_a_report_with_charts_and_csv_and_an_xes_export(client: Client, tmp_path: Path) -> None:
    import csv
    import xml.etree.ElementTree as ET

    html_path, csv_path = tmp_path / "order.html", tmp_path / "order.csv"
    code, text = await cli(client, "report", "--workflow", "order", "--since", "1d", "-o", str(html_path))
    assert code == 0 and "wrote" in text
    page = html_path.read_text()
    assert page.count("<svg") == 3 and "<script" not in page and "src=" not in page and "href=" not in page
    rows = {(r["section"], r["subject"], r["figure"]): r["value"] for r in csv.DictReader(csv_path.open())}
    assert rows[("overview", "order", "started")] == str(ORDERS) and rows[("overview", "order", "failed")] == "2"
    assert rows[("steps", "pay", "retries")] == str(ORDERS)
    assert rows[("failures", "ship", "ship.refused")] == "2"
    assert f"<td>{ORDERS}</td>" in page  # the same numbers in the HTML

    xes_path = tmp_path / "order.xes"
    code, text = await cli(client, "export-xes", "--workflow", "order", "-o", str(xes_path))
    assert code == 0 and f"wrote {ORDERS} executions" in text
    ns = {"x": "http://www.xes-standard.org/"}
    traces = ET.parse(xes_path).getroot().findall("x:trace", ns)
    assert len(traces) == ORDERS
    first = traces[0]
    names = [(e.find("x:string[@key='concept:name']", ns).get("value"),  # type: ignore[union-attr]
              e.find("x:string[@key='lifecycle:transition']", ns).get("value"))  # type: ignore[union-attr]
             for e in first.findall("x:event", ns)]  # fmt: skip
    assert names[:4] == [("pay", "start"), ("pay", "ate_abort"), ("pay", "start"), ("pay", "complete")]
    assert ("ship", "start") in names
