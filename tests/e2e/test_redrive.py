"""Redrive and bulk redrive on an embedded Runtime (SQLite, in-process), and over HTTP.

The workflow ``three`` runs python steps that count their calls (tests/e2e/redrive_steps.py):
``one`` -> ``two`` -> ``three``, where ``three`` fails while ``input.flag`` is false and its
dependency is "broken".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.cli.main import main as cli_main
from orchestrator.core import events as ev
from orchestrator.core.replay import verify_history
from orchestrator.core.state import ExecutionState
from orchestrator.history import timeline
from orchestrator.history.redrive import ExecutionRunning, RedriveInvalid
from orchestrator.ports import ExecutionQuery, UnknownWorkflow
from orchestrator.process import build_app
from orchestrator.runtime import ExecutionNotFound, InputInvalid, Runtime
from orchestrator.settings import Settings
from schemas.builder import Branch, Workflow
from schemas.definition import WorkflowDefinition
from schemas.graph import WorkflowGraph
from tests.e2e import redrive_steps as steps

F = "tests.e2e.redrive_steps:"
WAIT = 20.0
Client = TestClient[web.Request, web.Application]


def three(check: str = "check") -> WorkflowDefinition:
    definition: WorkflowDefinition = (
        Workflow("three", input_schema={"type": "object", "required": ["flag"]})
        .task("one", "python", config={"function": F + "one"}, input={"x": "input.x"})
        .task("two", "python", config={"function": F + "two"}, input={"prev": "steps.one"})
        .task(
            "three",
            "python",
            config={"function": F + check},
            input={"flag": "input.flag", "prev": "steps.two"},
        )
        .build()
    )
    return definition


WAITS = Workflow("waits").wait_for_event("hold", "go").build()
FORKED = (
    Workflow("forked")
    .parallel(
        "par",
        Branch().task("a1", "python", config={"function": F + "one"}),
        Branch()
        .task("b1", "python", config={"function": F + "two"})
        .task("b2", "python", config={"function": F + "check"}, input={"flag": "input.flag"}),
    )
    .build()
)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    steps.reset()
    async with Runtime(
        Settings(auth=False, event_log_url=f"sqlite:///{tmp_path}/redrive.db", python_allow=("tests.e2e",))
    ) as runtime:
        for definition in (three(), WAITS, FORKED):
            await runtime.register(definition)
        yield runtime
    steps.reset()


async def run(rt: Runtime, workflow: str, input: Any) -> str:
    started = await rt.start_execution(workflow, input)
    await rt.wait(started.execution_id, WAIT)
    return started.execution_id


async def cloudevents(rt: Runtime, execution_id: str) -> list[dict[str, Any]]:
    return [e.to_cloudevent() for e in await rt.history(execution_id)]


async def finished(rt: Runtime, execution_id: str) -> ExecutionState:
    return await rt.wait(execution_id, WAIT)


async def graph(rt: Runtime, name: str, version: int = 1) -> WorkflowGraph:
    return WorkflowGraph.build(await rt.registry.get(name, version))


async def test_redrive_from_failure_with_edited_input_reuses_the_steps_before_it(runtime: Runtime) -> None:
    rt = runtime
    original = await run(rt, "three", {"flag": False, "x": 1})
    assert (await rt.state(original)).status == "failed"
    assert steps.CALLS == {"one": 1, "two": 1, "check": 1}
    before = await cloudevents(rt, original)

    result = await rt.redrive(original, from_failure=True, input={"flag": True, "x": 1})
    assert result.created and result.redrive_of == original and result.execution_id != original
    assert result.from_step == "three" and result.reused == ["one", "two"] and result.version == 1
    final = await finished(rt, result.execution_id)
    assert final.status == "succeeded", final.error
    assert final.output == {"checked": {"two": {"one": 1}}, "flag": True}
    assert steps.CALLS == {"one": 1, "two": 1, "check": 2}  # steps 1-2 not run again

    assert await cloudevents(rt, original) == before  # the original's history is untouched
    events = await rt.history(result.execution_id)
    started = events[0].data
    assert started["metadata"] == {"redrive_of": original, "from_step": "three"}
    assert started["input"] == {"flag": True, "x": 1}
    assert set(started["reuse"]) == {"one", "two"}
    reused = [e.data["step"] for e in events if e.type == ev.STEP_SUCCEEDED and e.data.get("reused")]
    assert reused == ["one", "two"]
    assert not [e for e in events if e.type == ev.STEP_SCHEDULED and e.data["step"] != "three"]
    assert verify_history(await graph(rt, "three"), events) is None
    assert "reused" in "\n".join(timeline.render(timeline.build(events)))

    forward = await rt.links(original)
    back = await rt.links(result.execution_id)
    assert [(link.other_id, link.relation) for link in forward] == [(result.execution_id, "redriven_as")]
    assert [(link.other_id, link.relation) for link in back] == [(original, "redrive_of")]
    assert forward[0].execution_id == original and back[0].execution_id == result.execution_id


async def test_redrive_from_input_runs_everything_and_from_a_step_reuses_only_before_it(
    runtime: Runtime,
) -> None:
    rt = runtime
    original = await run(rt, "three", {"flag": False, "x": 2})
    steps.BROKEN["check"] = False  # the dependency is fixed: the same input passes now
    whole = await rt.redrive(original)
    assert whole.from_step is None and whole.reused == []
    assert (await finished(rt, whole.execution_id)).status == "succeeded"
    assert steps.CALLS == {"one": 2, "two": 2, "check": 2}
    assert (await rt.history(whole.execution_id))[0].data["input"] == {"flag": False, "x": 2}

    from_two = await rt.redrive(original, from_step="two")
    assert from_two.reused == ["one"]
    assert (await finished(rt, from_two.execution_id)).status == "succeeded"
    assert steps.CALLS == {"one": 2, "two": 3, "check": 3}
    relations = [(link.other_id, link.relation) for link in await rt.links(original)]
    assert relations == [(whole.execution_id, "redriven_as"), (from_two.execution_id, "redriven_as")]


async def test_a_redrive_with_a_dedup_key_starts_once(runtime: Runtime) -> None:
    rt = runtime
    original = await run(rt, "three", {"flag": False})
    first = await rt.redrive(original, from_failure=True, input={"flag": True}, dedup_key="k-1")
    again = await rt.redrive(original, from_failure=True, input={"flag": True}, dedup_key="k-1")
    assert first.created and not again.created and again.execution_id == first.execution_id
    await finished(rt, first.execution_id)
    page = await rt.list_executions(ExecutionQuery(workflow="three"))
    assert sorted(s.execution_id for s in page.items) == sorted([original, first.execution_id])
    assert len(await rt.links(original)) == 1 and len(await rt.links(first.execution_id)) == 1
    assert steps.CALLS["check"] == 2
    # the key is scoped to the original: another execution with the same key gets its own redrive
    other = await run(rt, "three", {"flag": False})
    third = await rt.redrive(other, dedup_key="k-1")
    assert third.created and third.execution_id != first.execution_id


async def test_refusals(runtime: Runtime) -> None:
    rt = runtime
    waiting = (await rt.start_execution("waits", {})).execution_id
    with pytest.raises(ExecutionRunning, match="still running"):
        await rt.redrive(waiting)
    assert await rt.links(waiting) == []
    with pytest.raises(ExecutionNotFound):
        await rt.redrive("no-such-execution")
    failed = await run(rt, "three", {"flag": False})
    with pytest.raises(RedriveInvalid, match="'nope' is not in three v1"):
        await rt.redrive(failed, from_step="nope")
    with pytest.raises(RedriveInvalid, match="not both"):
        await rt.redrive(failed, from_step="two", from_failure=True)
    with pytest.raises(InputInvalid):
        await rt.redrive(failed, input={"no_flag": True})
    with pytest.raises(UnknownWorkflow):
        await rt.redrive(failed, version=9)
    steps.BROKEN["check"] = False
    succeeded = await run(rt, "three", {"flag": True})
    with pytest.raises(RedriveInvalid, match="no failed step"):
        await rt.redrive(succeeded, from_failure=True)
    assert await rt.links(failed) == [] and steps.CALLS["one"] == 2  # nothing was started


async def test_redrive_on_a_newer_version(runtime: Runtime) -> None:
    rt = runtime
    original = await run(rt, "three", {"flag": False, "x": 3})
    fixed = await rt.register(three(check="lenient"))
    assert fixed.version == 2
    result = await rt.redrive(original, from_failure=True, version=2)
    final = await finished(rt, result.execution_id)
    assert final.status == "succeeded" and final.version == 2 and result.version == 2
    assert final.output == {"checked": {"two": {"one": 3}}, "flag": False, "lenient": True}
    assert steps.CALLS == {"one": 1, "two": 1, "check": 1, "lenient": 1}
    assert verify_history(await graph(rt, "three", 2), await rt.history(result.execution_id)) is None


async def test_from_failure_inside_a_parallel_starts_at_the_innermost_failed_step(runtime: Runtime) -> None:
    rt = runtime
    original = await run(rt, "forked", {"flag": False})
    failure = (await rt.history(original))[-1]
    assert failure.type == ev.EXECUTION_FAILED and failure.data["step"] == "par"
    steps.BROKEN["check"] = False
    result = await rt.redrive(original, from_failure=True)
    assert result.from_step == "b2"
    assert "b1" in result.reused and "par" not in result.reused and "b2" not in result.reused
    assert (await finished(rt, result.execution_id)).status == "succeeded"
    assert steps.CALLS["two"] == 1 and steps.CALLS["check"] == 2


async def failures(rt: Runtime, count: int) -> list[str]:
    ids = [await run(rt, "three", {"flag": False, "x": i}) for i in range(count)]
    return ids


async def test_bulk_dry_run_lists_matches_and_starts_nothing(runtime: Runtime) -> None:
    rt = runtime
    failed = await failures(rt, 3)
    steps.BROKEN["check"] = False
    passed = await run(rt, "three", {"flag": True})
    forked = await run(rt, "forked", {"flag": True})
    steps.BROKEN["check"] = True
    other_step = await run(rt, "forked", {"flag": False})  # fails at 'par'
    result = await rt.redrive_many(ExecutionQuery(workflow="three", status="failed"), failing_step="three")
    assert result.dry_run and sorted(result.matched) == sorted(failed) and result.started == []
    assert result.to_dict()["count"] == 3
    everything = await rt.redrive_many(ExecutionQuery(status="failed"))
    assert sorted(everything.matched) == sorted([*failed, other_step])
    assert passed not in everything.matched and forked not in everything.matched
    limited = await rt.redrive_many(ExecutionQuery(status="failed"), limit=2)
    assert len(limited.matched) == 2
    page = await rt.list_executions(ExecutionQuery())
    assert len(page.items) == 6  # nothing was started
    assert [await rt.links(execution_id) for execution_id in failed] == [[], [], []]


async def test_bulk_execute_is_paced_and_a_second_identical_call_starts_nothing(runtime: Runtime) -> None:
    rt = runtime
    failed = await failures(rt, 3)
    steps.BROKEN["check"] = False
    query = ExecutionQuery(workflow="three", status="failed")
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await rt.redrive_many(
        query, failing_step="three", from_failure=True, dry_run=False, rate_per_second=10
    )
    elapsed = loop.time() - began
    assert elapsed >= 0.2 - 0.01  # three starts at 10/s: two gaps of 0.1 s
    assert sorted(result.matched) == sorted(failed) and len(result.started) == 3 and not result.errors
    for new in result.started:
        assert (await finished(rt, new)).status == "succeeded"
    assert steps.CALLS == {"one": 3, "two": 3, "check": 6}
    for original in failed:
        links = await rt.links(original)
        assert len(links) == 1 and links[0].other_id in result.started

    again = await rt.redrive_many(
        query, failing_step="three", from_failure=True, dry_run=False, rate_per_second=10
    )
    assert sorted(again.matched) == sorted(failed)
    assert again.started == [] and sorted(again.existing) == sorted(result.started)
    assert len((await rt.list_executions(ExecutionQuery(workflow="three"))).items) == 6
    assert steps.CALLS["check"] == 6


async def test_bulk_does_not_redrive_its_own_redrives(runtime: Runtime) -> None:
    """Redrives that fail again match the same filters; the same batch must skip them."""
    rt = runtime
    failed = await failures(rt, 2)
    query = ExecutionQuery(workflow="three", status="failed")
    first = await rt.redrive_many(query, from_failure=True, dry_run=False, rate_per_second=100)
    assert len(first.started) == 2
    for new in first.started:
        assert (await finished(rt, new)).status == "failed"  # still broken
    again = await rt.redrive_many(query, from_failure=True, dry_run=False, rate_per_second=100)
    assert sorted(again.matched) == sorted(failed) and again.started == []
    # a different batch (another mode) sees all four failed executions
    other = await rt.redrive_many(query, dry_run=True)
    assert len(other.matched) == 4


async def test_bulk_collects_per_execution_errors(runtime: Runtime) -> None:
    rt = runtime
    await failures(rt, 2)
    result = await rt.redrive_many(ExecutionQuery(workflow="three"), from_step="nope", dry_run=False)
    assert result.started == [] and len(result.errors) == 2
    assert all("'nope' is not in three v1" in e["error"] for e in result.errors)
    with pytest.raises(RedriveInvalid):
        await rt.redrive_many(ExecutionQuery(), rate_per_second=0)


# -- HTTP -------------------------------------------------------------------------------------


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    assert "Traceback" not in text
    return json.loads(text)


async def error_code(response: Any, status: int) -> str:
    code: str = (await answer(response, status))["error"]["code"]
    return code


async def test_http_redrive_links_and_errors(client: Client, runtime: Runtime) -> None:
    rt = runtime
    original = await run(rt, "three", {"flag": False})
    url = f"/api/v1/executions/{original}/redrive"
    body = {"from_failure": True, "input": {"flag": True}}
    made = await answer(await client.post(url, json=body, headers={"Idempotency-Key": "r1"}), 202)
    assert made["created"] is True and made["redrive_of"] == original and made["from_step"] == "three"
    assert made["reused"] == ["one", "two"]
    same = await answer(await client.post(url, json=body, headers={"Idempotency-Key": "r1"}), 200)
    assert same["execution_id"] == made["execution_id"] and same["created"] is False
    assert (await finished(rt, made["execution_id"])).status == "succeeded"

    shown = await answer(await client.get(f"/api/v1/executions/{original}"), 200)
    assert [(x["relation"], x["other_id"]) for x in shown["links"]] == [("redriven_as", made["execution_id"])]
    links = await answer(await client.get(f"/api/v1/executions/{made['execution_id']}/links"), 200)
    assert [(x["relation"], x["other_id"]) for x in links["links"]] == [("redrive_of", original)]
    assert links["links"][0]["created_at"].endswith("Z")

    # no body: from the input, which is kept
    whole = await answer(await client.post(url), 202)
    assert whole["from_step"] is None and whole["reused"] == []
    await finished(rt, whole["execution_id"])

    assert await error_code(await client.post("/api/v1/executions/nope/redrive", json={}), 404) == (
        "unknown_execution"
    )
    assert await error_code(await client.get("/api/v1/executions/nope/links"), 404) == "unknown_execution"
    waiting = (await rt.start_execution("waits", {})).execution_id
    running = await client.post(f"/api/v1/executions/{waiting}/redrive", json={})
    assert await error_code(running, 409) == "execution_running"
    bad_step = await client.post(url, json={"from_step": "nope"})
    assert await error_code(bad_step, 400) == "invalid_redrive"
    assert await error_code(await client.post(url, json={"from": "x"}), 400) == "invalid_body"
    assert await error_code(await client.post(url, json={"input": {}}), 400) == "invalid_input"
    assert await error_code(await client.post(url, json={"version": 5}), 404) == "unknown_workflow"


async def test_http_bulk_redrive(client: Client, runtime: Runtime) -> None:
    rt = runtime
    failed = await failures(rt, 2)
    bulk = "/api/v1/executions/redrive"
    dry = await answer(await client.post(bulk, json={"workflow": "three", "failing_step": "three"}), 200)
    assert sorted(dry["matched"]) == sorted(failed) and dry["count"] == 2 and dry["started"] == []
    assert dry["dry_run"] is True
    steps.BROKEN["check"] = False
    body = {"workflow": "three", "from_failure": True, "dry_run": False, "rate_per_second": 50}
    done = await job_done(client, await answer(await client.post(bulk, json=body), 202))
    assert len(done["started"]) == 2 and done["count"] == 2
    again = await job_done(client, await answer(await client.post(bulk, json=body), 202))
    assert again["started"] == [] and sorted(again["existing"]) == sorted(done["started"])
    assert await error_code(await client.post(bulk, json={"rate_per_second": 0}), 400) == "invalid_body"
    assert await error_code(await client.post(bulk, json={"status": "running"}), 400) == "invalid_body"
    later_first = {"started_after": "2030-01-01T00:00:00Z", "started_before": "2020-01-01T00:00:00Z"}
    assert await error_code(await client.post(bulk, json=later_first), 400) == "invalid_body"
    future = await answer(await client.post(bulk, json={"started_after": "2999-01-01T00:00:00Z"}), 200)
    assert future["matched"] == []


async def job_done(client: Client, job: dict[str, Any]) -> Any:
    """Follow a bulk redrive's job (the 202's body) until it ends; its final view."""
    for _ in range(int(WAIT / 0.05)):
        if job["status"] != "running":
            assert job["status"] == "succeeded", job
            return job
        await asyncio.sleep(0.05)
        job = await answer(await client.get(f"/api/v1/jobs/{job['job_id']}"), 200)
    raise AssertionError(f"job still running: {job}")


# -- CLI (in-process server; the CLI runs in a thread with its own event loop) -----------------


async def test_cli_redrive_and_redrive_bulk(
    client: Client, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = runtime
    url = str(client.make_url("")).rstrip("/")
    original = await run(rt, "three", {"flag": False, "x": 5})
    capsys.readouterr()

    async def cli(*args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, [*args, "--url", url])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await cli("redrive", original, "--from-failure", "--input", '{"flag": true}', "--wait")
    assert code == 0, err
    assert "reused output=" in out and "status: succeeded" in out
    code, out, err = await cli("redrive", original, "--from-step", "two", "--json", "--idempotency-key", "c1")
    assert code == 0, err
    made = json.loads(out)
    assert made["created"] is True and made["reused"] == ["one"]
    code, out, _ = await cli("redrive", original, "--from-step", "two", "--idempotency-key", "c1")
    assert code == 0 and "nothing started" in out
    await finished(rt, made["execution_id"])
    code, _, err = await cli("redrive", original, "--from-step", "nope")
    assert code == 1 and "'nope' is not in three v1" in err and "HTTP 400" in err

    await failures(rt, 1)
    code, out, err = await cli("redrive-bulk", "--workflow", "three", "--failing-step", "three")
    assert code == 0, err
    lines = out.splitlines()
    # failed: the original, the redrive from 'two' (same input, still broken), the new one
    assert lines[0] == "3 matched" and "dry run" in out
    assert len((await rt.list_executions(ExecutionQuery(workflow="three"))).items) == 4
    steps.BROKEN["check"] = False
    code, out, err = await cli(
        "redrive-bulk", "--workflow", "three", "--from-failure", "--execute", "--rate", "50", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["count"] == 3 and len(json.loads(out)["started"]) == 3
