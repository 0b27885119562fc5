"""A bulk redrive runs as a background job of the runtime: the request answers 202 at once, the
job shows its progress, cancel stops it, stopping the runtime stops it, and the same request again
resumes it idempotently (the batch key)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.cli.client import Client as CliClient
from orchestrator.cli.main import main as cli_main
from orchestrator.cli.output import Output
from orchestrator.cli.redrive import follow
from orchestrator.history.redrive import Batch
from orchestrator.ports import ExecutionQuery
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.e2e import redrive_steps as steps
from tests.e2e.test_redrive import FORKED, WAITS, answer, error_code, failures, job_done, three
from tests.fake_sources import eventually

Client = TestClient[web.Request, web.Application]
BULK = "/api/v1/executions/redrive"
FIX_ALL = {"workflow": "three", "from_failure": True, "dry_run": False}


def open_runtime(tmp_path: Path) -> Runtime:
    return Runtime(Settings(auth=False, event_log_url=f"sqlite:///{tmp_path}/jobs.db", python_allow=("tests.e2e",)))


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    steps.reset()
    async with open_runtime(tmp_path) as runtime:
        for definition in (three(), WAITS, FORKED):
            await runtime.register(definition)
        yield runtime
    steps.reset()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def redriven(rt: Runtime) -> int:
    """Executions of ``three`` started by a redrive."""
    page = await rt.list_executions(ExecutionQuery(workflow="three", limit=1000))
    count = 0
    for item in page.items:
        first = await rt.history(item.execution_id, 0, 1)
        count += bool(first[0].data.get("metadata"))
    return count


async def test_the_request_answers_at_once_and_the_job_shows_progress(client: Client, runtime: Runtime) -> None:
    failed = await failures(runtime, 4)
    steps.BROKEN["check"] = False
    began = time.perf_counter()
    response = await client.post(BULK, json={**FIX_ALL, "rate_per_second": 5})
    job = await answer(response, 202)
    assert time.perf_counter() - began < 0.5  # the starts are paced over 0.6 s: not in the request
    assert job["status"] == "running" and job["created"] is True and job["kind"] == "redrive"
    assert response.headers["Location"] == job["status_url"] == f"/api/v1/jobs/{job['job_id']}"

    same = await answer(await client.post(BULK, json={**FIX_ALL, "rate_per_second": 5}), 202)
    assert same["job_id"] == job["job_id"] and same["created"] is False  # the batch is running

    other_tenant = {"X-Orchestrator-Tenant": "acme"}
    seen = await client.get(job["status_url"], headers=other_tenant)
    assert await error_code(seen, 404) == "unknown_job"

    progress = []
    while job["status"] == "running":
        await asyncio.sleep(0.05)
        job = await answer(await client.get(job["status_url"]), 200)
        progress.append(job["progress"]["done"])
    assert job["status"] == "succeeded" and job["finished_at"] and job["error"] is None
    assert sorted(job["matched"]) == sorted(failed) and len(job["started"]) == 4
    assert job["progress"] == {"total": 4, "done": 4}
    assert progress == sorted(progress) and len(set(progress)) > 1  # it moved, never backwards
    assert await error_code(await client.post(job["status_url"] + "/cancel"), 409) == "job_finished"
    assert await error_code(await client.get("/api/v1/jobs/nope"), 404) == "unknown_job"


async def test_cancel_stops_a_job_and_the_same_request_resumes_it(client: Client, runtime: Runtime) -> None:
    await failures(runtime, 5)
    steps.BROKEN["check"] = False
    body = {**FIX_ALL, "rate_per_second": 4}
    job = await answer(await client.post(BULK, json=body), 202)
    while not job["started"]:
        await asyncio.sleep(0.02)
        job = await answer(await client.get(job["status_url"]), 200)
    cancelled = await answer(await client.post(job["status_url"] + "/cancel"), 200)
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    made = cancelled["started"]
    assert 1 <= len(made) < 5
    await asyncio.sleep(0.6)  # two more paced starts' worth of time: nothing else starts
    assert await redriven(runtime) == len(made)

    resumed = await job_done(client, await answer(await client.post(BULK, json=body), 202))
    assert resumed["job_id"] != job["job_id"]
    assert sorted(resumed["existing"]) == sorted(made)  # the earlier job's redrives, not again
    assert len(resumed["started"]) == 5 - len(made) and resumed["progress"] == {"total": 5, "done": 5}
    assert await redriven(runtime) == 5


async def test_too_many_running_jobs_is_429(client: Client, runtime: Runtime) -> None:
    await failures(runtime, 2)
    runtime.jobs.max_running = 1
    await answer(await client.post(BULK, json={**FIX_ALL, "rate_per_second": 1}), 202)
    other = await client.post(BULK, json={**FIX_ALL, "from_failure": False, "rate_per_second": 1})
    assert await error_code(other, 429) == "too_many_jobs"
    assert other.headers["Retry-After"] == "5"
    both = await client.post(BULK, json={**FIX_ALL, "from_step": "two"})
    assert await error_code(both, 400) == "invalid_redrive"  # checked before a job is made


async def test_stopping_the_runtime_cancels_its_jobs_and_a_restart_resumes_them(tmp_path: Path) -> None:
    steps.reset()
    async with open_runtime(tmp_path) as rt:
        await rt.register(three())
        await failures(rt, 4)
        steps.BROKEN["check"] = False
        batch = Batch(ExecutionQuery(workflow="three", status="failed"), from_failure=True, rate_per_second=4)
        job, created = rt.redrive_job(batch)
        assert created
        await eventually(lambda: bool(job.work.progress()["started"]), 20)
    assert job.status == "cancelled" and job.task is not None and job.task.done()
    made = job.work.progress()["started"]
    assert 1 <= len(made) < 4

    async with open_runtime(tmp_path) as rt:  # the process restarted: the job is gone
        again, _ = rt.redrive_job(batch)
        await eventually(lambda: again.finished, 20)
        view = again.to_dict()
        assert view["status"] == "succeeded" and sorted(view["existing"]) == sorted(made)
        assert len(view["started"]) + len(view["existing"]) == 4
    steps.reset()


async def test_a_dry_run_looks_at_a_bounded_number_of_executions(runtime: Runtime) -> None:
    await failures(runtime, 3)
    query = ExecutionQuery(workflow="three", status="failed")
    bounded = await runtime.redrive_many(query, failing_step="elsewhere", scan_limit=2)
    assert bounded.matched == [] and bounded.truncated and bounded.to_dict()["truncated"] is True
    whole = await runtime.redrive_many(query, scan_limit=3)
    assert len(whole.matched) == 3 and not whole.truncated


async def test_the_cli_follows_detaches_and_cancels_jobs(
    client: Client, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(client.make_url("")).rstrip("/")
    await failures(runtime, 3)
    steps.BROKEN["check"] = False
    capsys.readouterr()

    async def cli(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, [*args, "--url", url])
        out, err = capsys.readouterr()
        return code, out, err

    bulk = ("redrive-bulk", "--workflow", "three", "--from-failure", "--execute")
    code, out, err = await cli(*bulk, "--rate", "2", "--detach", "--json")
    assert code == 0, err
    detached: dict[str, Any] = json.loads(out)
    assert detached["status"] == "running"
    code, out, err = await cli("job", detached["job_id"])
    assert code == 0 and out.startswith(f"job {detached['job_id']} running: "), (out, err)
    code, out, err = await cli("job", detached["job_id"], "--cancel", "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    code, out, err = await cli("job", detached["job_id"])
    assert code == 1 and "cancelled" in err  # a job that did not succeed: exit 1

    code, out, err = await cli(*bulk, "--rate", "50")
    assert code == 0, err
    assert out.splitlines()[0] == "3 matched" and "started " in out
    code, _, err = await cli("job", "nope")
    assert code == 1 and "unknown_job" in err


async def test_interrupting_the_cli_while_it_follows_cancels_the_job(client: Client, runtime: Runtime) -> None:
    """Ctrl-C cancels the task running the command: ``follow`` cancels the job on the way out."""
    await failures(runtime, 3)
    steps.BROKEN["check"] = False
    job = await answer(await client.post(BULK, json={**FIX_ALL, "rate_per_second": 1}), 202)
    url = str(client.make_url("")).rstrip("/")
    async with CliClient(url) as cli_client:
        following = asyncio.create_task(follow(cli_client, job, Output(), "redriving"))
        await asyncio.sleep(0.3)
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
    final = await answer(await client.get(job["status_url"]), 200)
    assert final["status"] == "cancelled" and len(final["started"]) < 3
