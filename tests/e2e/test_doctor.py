"""The doctor: leaks planted through the ports (a timer, a wait, a queued task of a finished or
unknown execution) are found, released by ``fix``, and over HTTP and the CLI; live ones are kept."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.doctor import run_doctor
from orchestrator.backends.inprocess import InProcessTransport
from orchestrator.cli.main import main
from orchestrator.limits.doctor import TaskCheck, examine
from orchestrator.ports import StepTask
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition

Client = TestClient[web.Request, web.Application]
QUICK: dict[str, Any] = {"name": "quick", "steps": [{"name": "s", "type": "task", "connector": "noop"}]}
WAITER: dict[str, Any] = {
    "name": "waiter",
    "steps": [{"name": "wait", "type": "wait_for_event", "event": "go", "timeout_seconds": 3600, "next": "done"},
              {"name": "done", "type": "succeed"}],
}  # fmt: skip


def settings(tmp_path: Path, backend: str, **more: Any) -> Settings:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'log.db'}"
    return Settings(auth=False, event_log_url=url, **more)


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def plant(runtime: Runtime) -> tuple[str, str]:
    """A finished execution holding a timer and a wait; a running one holding its own."""
    for definition in (QUICK, WAITER):
        await runtime.register(parse_definition(definition))
    finished = (await runtime.start_execution("quick")).execution_id
    await runtime.wait(finished, 10)
    running = (await runtime.start_execution("waiter")).execution_id
    await runtime.timers.schedule(finished, "planted", runtime.clock() + 3600)
    await runtime.waits.update(finished, set(), {("go", "planted")})
    await runtime.timers.schedule("no-such-execution", "orphan", runtime.clock() + 3600)
    return finished, running


async def test_planted_leaks_are_found_and_fixed(tmp_path: Path, backend: str) -> None:
    async with Runtime(settings(tmp_path, backend)) as runtime:
        finished, running = await plant(runtime)
        report = (await run_doctor(runtime)).to_dict()
        found = {(leak["kind"], leak["execution_id"], leak["status"]) for leak in report["leaks"]}
        assert found == {
            ("timer", finished, "succeeded"),
            ("wait", finished, "succeeded"),
            ("timer", "no-such-execution", "missing"),
        }
        assert report["found"]["timer"] == 2 and report["found"]["wait"] == 1 and not report["fixed"]
        assert report["checked"]["timer"] >= 3  # the running execution's step timeout counts too
        fixed = (await run_doctor(runtime, fix=True)).to_dict()
        assert fixed["fixed"] and all(leak["fixed"] for leak in fixed["leaks"])
        assert (await run_doctor(runtime)).leaks == []
        assert any(e == running for e, _, _ in await runtime.timers.armed())  # type: ignore[attr-defined]
        assert await runtime.waits.waiting(("go", None)) == [running]


async def test_queued_tasks_of_finished_executions_are_dropped() -> None:
    transport = InProcessTransport()  # not started: tasks stay queued
    for execution_id in ("done", "live", "done"):
        await transport.dispatch(StepTask(execution_id, "w", "s", 1, f"a-{execution_id}", "noop", {}, None, "k"))
    statuses = {"done": "failed", "live": "running"}

    async def status_of(execution_id: str) -> str | None:
        return statuses.get(execution_id)

    report = await examine([TaskCheck(transport)], status_of, fix=True)
    assert [leak.execution_id for leak in report.leaks] == ["done", "done"]
    assert [task.execution_id for task in await transport.queued_tasks()] == ["live"]
    assert transport.backlog == 1


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[Client, Runtime]]:
    runtime = Runtime(settings(tmp_path, "sqlite"))
    async with runtime, TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client, runtime


async def test_http_and_cli(client: tuple[Client, Runtime], capsys: pytest.CaptureFixture[str]) -> None:
    http, runtime = client
    finished, _ = await plant(runtime)
    answer = await http.get("/api/v1/doctor")
    assert answer.status == 200 and len((await answer.json())["leaks"]) == 3
    url = str(http.make_url("")).rstrip("/")
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["doctor", "--url", url, "--json"])
    listed = json.loads(capsys.readouterr().out)
    assert code == 0 and {leak["execution_id"] for leak in listed["leaks"]} == {finished, "no-such-execution"}
    code = await asyncio.to_thread(main, ["doctor", "--fix", "--url", url])
    out = capsys.readouterr().out
    assert code == 0 and "3 leaks" in out and "yes" in out
    assert (await (await http.get("/api/v1/doctor")).json())["leaks"] == []


async def test_the_periodic_check_logs_what_it_finds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime = Runtime(settings(tmp_path, "memory", doctor_interval=0.05))
    async with runtime, TestClient(TestServer(build_app(runtime, runtime.settings))):
        with caplog.at_level(logging.WARNING, logger="orchestrator.api.doctor"):
            await plant(runtime)
            for _ in range(100):
                if any("doctor:" in record.getMessage() for record in caplog.records):
                    break
                await asyncio.sleep(0.05)
        assert any("'timer': 2" in record.getMessage() for record in caplog.records)
        assert len(await runtime.timers.armed()) >= 2  # type: ignore[attr-defined]  # reported, not fixed


async def test_the_interval_setting_refuses_a_negative_value() -> None:
    from orchestrator.settings import SettingsError

    with pytest.raises(SettingsError, match="DOCTOR_INTERVAL"):
        Settings.from_env({"ORCHESTRATOR_DOCTOR_INTERVAL": "-1"})
    assert Settings.from_env({}).doctor_interval == 300


async def test_each_pass_sets_the_doctor_metrics(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from orchestrator.observability.prometheus import PrometheusInstruments

    metrics = PrometheusInstruments(process_metrics=False)
    async with Runtime(settings(tmp_path, "sqlite"), instruments=metrics) as runtime:
        await plant(runtime)

        def text() -> str:
            return generate_latest(metrics.registry).decode()

        await run_doctor(runtime)
        assert 'orchestrator_doctor_leaks{kind="timer"} 2.0' in text()
        assert 'orchestrator_doctor_leaks{kind="wait"} 1.0' in text()
        assert "orchestrator_doctor_fixed_total{" not in text()  # found, not fixed
        await run_doctor(runtime, fix=True)
        assert 'orchestrator_doctor_fixed_total{kind="timer"} 2.0' in text()
        await run_doctor(runtime)
        assert 'orchestrator_doctor_leaks{kind="timer"} 0.0' in text()
        assert 'orchestrator_doctor_fixed_total{kind="timer"} 2.0' in text()  # a counter keeps its count


async def test_a_slot_counted_for_a_finished_execution_is_found_and_given_back(tmp_path: Path) -> None:
    from orchestrator.core.state import ExecutionState

    limited = {"name": "limited", "concurrency": [{"limit": 1}], "steps": [{"name": "s", "type": "task", "connector": "noop"}]}
    async with Runtime(settings(tmp_path, "sqlite")) as runtime:
        await runtime.register(parse_definition(limited))
        finished = (await runtime.start_execution("limited")).execution_id
        done = await runtime.wait(finished, 10)
        assert done.status == "succeeded" and done.slots
        # The admission missed the end: it still counts the finished execution's slot.
        keys = tuple(slot["key"] for slot in done.slots)
        stale = ExecutionState(**{**done.__dict__, "status": "running", "held": keys, "queued": ()})
        runtime.admission.table.sync(stale, runtime.clock())
        blocked = (await runtime.start_execution("limited")).execution_id
        await asyncio.sleep(0.3)
        assert (await runtime.state(blocked)).shown_status == "queued"  # the leaked slot is the only one

        report = (await run_doctor(runtime)).to_dict()
        assert [(leak["kind"], leak["execution_id"], leak["status"]) for leak in report["leaks"]] == [
            ("slot", finished, "succeeded")
        ]
        assert report["checked"]["slot"] == 2  # the blocked execution waits: counted, not a leak
        fixed = (await run_doctor(runtime, fix=True)).to_dict()
        assert fixed["fixed"] and fixed["leaks"][0]["fixed"]
        assert (await runtime.wait(blocked, 10)).status == "succeeded"  # given back: the next one ran
        assert (await run_doctor(runtime)).leaks == []
