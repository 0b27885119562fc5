"""``orchestrator replay verify`` over real executions recorded in a SQLite file.

Version 1 runs for real (python-function steps); later versions are only registered, then the
CLI replays the recorded v1 histories with each version's graph.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition
from schemas.validation import parse_definition

FUNCS = "tests.unit.python_funcs"


def orders(**changes: Any) -> dict[str, Any]:
    """validate -> route (amount > 100: big, else small) -> done."""
    steps: dict[str, dict[str, Any]] = {
        "validate": {
            "name": "validate",
            "type": "task",
            "connector": "python",
            "config": {"function": f"{FUNCS}:echo"},
            "input": {"value": "input"},
            "next": "route",
        },
        "route": {
            "name": "route",
            "type": "choice",
            "choices": [{"when": "input.amount > `100`", "next": "big"}],
            "default": "small",
        },
        "big": {
            "name": "big",
            "type": "task",
            "connector": "python",
            "config": {"function": f"{FUNCS}:add"},
            "input": {"a": "input.amount", "b": 1},
            "next": "done",
        },
        "small": {
            "name": "small",
            "type": "task",
            "connector": "python",
            "config": {"function": f"{FUNCS}:echo"},
            "input": {"value": "'small'"},
            "next": "done",
        },
        "done": {"name": "done", "type": "succeed", "output": "steps"},
    }
    extra_steps = changes.pop("steps", {})
    for name, step in extra_steps.items():
        steps[name] = step if "type" in step else {**steps[name], **step}
    order = changes.pop("order", list(steps))
    return {"name": "orders", "steps": [steps[name] for name in order], **changes}


V2_COMPATIBLE = orders(
    description="more retries",
    steps={"validate": {"retry": {"max_attempts": 5, "backoff": {"initial_seconds": 2}}}},
)
V3_INSERTED = orders(
    steps={
        "validate": {"next": "audit"},
        "audit": {
            "name": "audit",
            "type": "task",
            "connector": "python",
            "config": {"function": f"{FUNCS}:echo"},
            "input": {"value": "input.amount"},
            "next": "route",
        },
    },
    order=["validate", "audit", "route", "big", "small", "done"],
)
V4_CHOICE = orders(
    steps={"route": {"choices": [{"when": "input.amount > `30`", "next": "big"}]}},
)
AMOUNTS = (50, 150, 20)


def definition(data: dict[str, Any]) -> WorkflowDefinition:
    return parse_definition(data)


async def record(url: str) -> list[str]:
    """Run three executions of v1 to the end; register v2..v4 (never run). Their ids, in start order."""
    ids = []
    async with Runtime(Settings(event_log_url=url, python_allow=("examples", "tests"))) as runtime:
        stored = await runtime.register(definition(orders()))
        assert stored.version == 1
        for amount in AMOUNTS:
            started = await runtime.start_execution("orders", {"amount": amount, "id": f"o-{amount}"})
            ids.append(started.execution_id)
            await asyncio.sleep(0.002)  # distinct started_at: a stable newest-first order
        for execution_id in ids:
            assert (await runtime.wait(execution_id, timeout=10)).status == "succeeded"
        for version, data in ((2, V2_COMPATIBLE), (3, V3_INSERTED), (4, V4_CHOICE)):
            assert (await runtime.register(definition(data))).version == version
    return ids


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path}/replay.db"
    return url, asyncio.run(record(url))


def verify(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["replay", "verify", "--workflow", "orders", "--event-log", url, *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_the_recorded_version_and_a_compatible_one_match(
    recorded: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = recorded
    for version in ("1", "2"):
        code, out, _ = verify(capsys, url, "--version", version)
        assert code == 0, out
        assert f"orders v{version}" in out
        assert "checked 3: 3 ok, 0 diverged" in out
        for execution_id in ids:
            assert execution_id in out
    code, out, _ = verify(capsys, url, "--version", "2", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert report["summary"] == {"checked": 3, "ok": 3, "diverged": 0}
    assert [e["execution_id"] for e in report["executions"]] == ids[::-1]  # newest first
    assert {e["recorded_version"] for e in report["executions"]} == {1}
    assert {e["result"] for e in report["executions"]} == {"ok"}


def test_an_inserted_step_diverges_every_execution(
    recorded: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = recorded
    code, out, _ = verify(capsys, url, "--version", "3")
    assert code == 1, out
    assert "checked 3: 0 ok, 3 diverged" in out
    for execution_id in ids:
        assert f"{execution_id} diverged at sequence 4:" in out
    assert "the machine decides StepScheduled, the history holds ChoiceMade" in out
    code, out, _ = verify(capsys, url, "--version", "3", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    for check in report["executions"]:
        divergence = check["divergence"]
        assert check["result"] == "diverged" and divergence["sequence"] == 4
        assert divergence["expected"]["type"] == "StepScheduled"
        assert divergence["expected"]["data"]["step"] == "audit"
        assert divergence["recorded"]["type"] == "ChoiceMade"


def test_a_changed_choice_diverges_only_where_it_decides_otherwise(
    recorded: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = recorded
    code, out, _ = verify(capsys, url, "--version", "4", "--json")
    report = json.loads(out)
    assert code == 1
    by_id = {check["execution_id"]: check for check in report["executions"]}
    assert [by_id[i]["result"] for i in ids] == ["diverged", "ok", "ok"]  # amounts 50, 150, 20
    divergence = by_id[ids[0]]["divergence"]
    assert divergence["sequence"] == 4
    assert divergence["reason"] == (
        "ChoiceMade.data['next']: the machine decides 'big', the history holds 'small'"
    )


def test_sample_and_recorded_version_filters(
    recorded: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, ids = recorded
    code, out, _ = verify(capsys, url, "--version", "4", "--sample", "1", "--json")
    report = json.loads(out)
    assert code == 0 and [e["execution_id"] for e in report["executions"]] == [ids[-1]]
    code, out, _ = verify(capsys, url, "--version", "3", "--recorded-version", "2")
    assert code == 0
    assert "no recorded executions matched" in out
    code, out, _ = verify(capsys, url, "--version", "3", "--status", "failed", "--json")
    assert code == 0 and json.loads(out)["summary"]["checked"] == 0


def test_a_definition_file_not_registered_yet(
    recorded: tuple[str, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, _ = recorded
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(V3_INSERTED))
    code, out, _ = verify(capsys, url, "--file", str(path))
    assert code == 1 and "(unregistered)" in out and "3 diverged" in out
    path.write_text(json.dumps({**V2_COMPATIBLE, "name": "other"}))
    code, _, err = verify(capsys, url, "--file", str(path))
    assert code == 2 and "defines workflow 'other'" in err


def test_usage_errors_exit_2_with_one_line(
    recorded: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = recorded
    capsys.readouterr()
    code = main(["replay", "verify", "--workflow", "nope", "--version", "1", "--event-log", url])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip().splitlines() == ["error: unknown workflow 'nope'"]
    code, out, err = verify(capsys, url, "--version", "9")
    assert code == 2 and err.strip().splitlines() == ["error: workflow 'orders' has no version 9"]
    code, _, err = verify(capsys, url, "--version", "1", "--sample", "0")
    assert code == 2 and "--sample" in err
    code = main(["replay", "verify", "--version", "1"])  # --workflow is required
    assert code == 2
