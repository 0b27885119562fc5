"""Retention on the embedded backends: finished histories expire, archived first when asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main
from orchestrator.core.replay import verify_history
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.envelope import Envelope
from schemas.graph import WorkflowGraph
from schemas.validation import parse_definition

DAY = 86_400.0
T0 = 1_780_000_000.0


def _definition(name: str, retention: dict[str, Any] | None) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "name": name,
        "steps": [
            {"name": "a", "type": "task", "connector": "noop", "next": "gate"},
            {
                "name": "gate",
                "type": "choice",
                "choices": [{"when": "input.park", "next": "park"}],
                "default": "done",
            },
            {"name": "park", "type": "wait_for_event", "event": "go", "next": "done"},
            {"name": "done", "type": "succeed"},
        ],
    }
    if retention is not None:
        definition["retention"] = retention
    return definition


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/retention.db"


async def _run(runtime: Runtime, workflow: str, park: bool = False) -> str:
    started = await runtime.start_execution(workflow, {"park": park})
    if not park:
        state = await runtime.wait(started.execution_id, timeout=10)
        assert state.status == "succeeded"
    return started.execution_id


async def test_finished_histories_expire_after_the_retention_period(url: str, tmp_path: Path) -> None:
    clock = Clock()
    archive = tmp_path / "archive"
    settings = Settings(event_log_url=url, retention_interval=0, archive_dir=str(archive))
    async with Runtime(settings, clock=clock) as runtime:
        await runtime.register(parse_definition(_definition("kept", {"days": 2, "archive": True})))
        await runtime.register(parse_definition(_definition("forever", None)))
        old = [await _run(runtime, "kept") for _ in range(3)]
        parked = await _run(runtime, "kept", park=True)
        untouched = await _run(runtime, "forever")
        histories = {x: await runtime.history(x) for x in old}

        clock.now = T0 + 1 * DAY  # inside the period: nothing expires
        report = await runtime.retention.sweep()
        assert report.expired == [] and report.archived == []

        recent = await _run(runtime, "kept")  # ends a day later than the others
        clock.now = T0 + 2.5 * DAY
        report = await runtime.retention.sweep()
        assert sorted(report.expired) == sorted(old)
        for x in old:
            assert await runtime.log.summary(x) is None
            assert await runtime.log.read(x) == []
        for x in (parked, untouched, recent):
            assert await runtime.log.summary(x) is not None
        listed = {s.execution_id for s in (await runtime.list_executions(_all())).items}
        assert listed == {parked, untouched, recent}

        # every archive file holds the whole history, byte for byte, and still replays
        graph = WorkflowGraph.build(await runtime.registry.get("kept", 1))
        assert len(report.archived) == 3
        for path in map(Path, report.archived):
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            assert [line["kind"] for line in lines[:2]] == ["header", "definition"]
            assert lines[-1] == {"kind": "footer", "executions": 1, "events": len(lines) - 3, "definitions": 1}
            events = [Envelope.from_cloudevent(line["event"]) for line in lines[2:-1]]
            execution_id = events[0].subject
            assert [e.to_bytes() for e in events] == [e.to_bytes() for e in histories[execution_id]]
            assert verify_history(graph, events) is None

        clock.now = T0 + 10 * DAY  # the parked one never finished: never expires
        report = await runtime.retention.sweep()
        assert report.expired == [recent]
        assert await runtime.log.summary(parked) is not None


async def test_archiving_without_an_archive_directory_deletes_nothing(url: str) -> None:
    clock = Clock()
    async with Runtime(Settings(event_log_url=url, retention_interval=0), clock=clock) as runtime:
        await runtime.register(parse_definition(_definition("kept", {"days": 1, "archive": True})))
        done = await _run(runtime, "kept")
        clock.now = T0 + 5 * DAY
        report = await runtime.retention.sweep()
        assert report.expired == [] and "kept" in report.skipped
        assert await runtime.log.summary(done) is not None


async def test_the_policy_of_the_latest_version_applies(url: str) -> None:
    clock = Clock()
    async with Runtime(Settings(event_log_url=url, retention_interval=0), clock=clock) as runtime:
        await runtime.register(parse_definition(_definition("kept", None)))
        done = await _run(runtime, "kept")
        clock.now = T0 + 5 * DAY
        assert (await runtime.retention.sweep()).expired == []
        await runtime.register(parse_definition(_definition("kept", {"days": 3})))
        assert (await runtime.retention.sweep()).expired == [done]


def test_the_cli_sweeps_a_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path}/cli.db"

    async def seed() -> str:
        clock = Clock()
        clock.now = T0 - 30 * DAY  # long ago, in real time too
        async with Runtime(Settings(event_log_url=db, retention_interval=0), clock=clock) as runtime:
            await runtime.register(parse_definition(_definition("kept", {"days": 1})))
            return await _run(runtime, "kept")

    import asyncio

    execution_id = asyncio.run(seed())
    assert main(["retention", "sweep", "--event-log", db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["expired"] == [execution_id]
    assert main(["retention", "sweep", "--event-log", db]) == 0
    assert "expired 0 executions" in capsys.readouterr().out


def _all() -> Any:
    from orchestrator.ports import ExecutionQuery

    return ExecutionQuery(limit=100)
