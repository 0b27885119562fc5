"""``orchestrator diff`` and ``orchestrator definitions-diff`` against a real server process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.main import main
from tests.e2e.serverproc import ServerProcess, cli_env

V1: dict[str, Any] = {
    "name": "greet",
    "steps": [
        {
            "name": "hello",
            "type": "task",
            "connector": "noop",
            "input": {"who": "input.name"},
            "next": "done",
        },
        {"name": "done", "type": "succeed", "output": "steps.hello"},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("diffs")
    (tmp / "greet.json").write_text(json.dumps(V1))
    proc = ServerProcess(
        cli_env(f"sqlite:///{tmp}/serve.db"), ["--definitions", str(tmp / "greet.json")], tmp / "server.log"
    )
    try:
        yield proc.start(), tmp
    finally:
        proc.stop()
        print(proc.output())  # shown when a test fails


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--url", url])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def start(capsys: pytest.CaptureFixture[str], url: str, name: str) -> str:
    code, out, _ = run(
        capsys, url, "start", "greet", "--input", json.dumps({"name": name}), "--wait", "--json"
    )
    assert code == 0, out
    execution_id: str = json.loads(out)["execution_id"]
    return execution_id


def test_diff_two_executions(server: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = server
    ada, ada_again, bob = (start(capsys, url, name) for name in ("ada", "ada", "bob"))
    code, out, _ = run(capsys, url, "diff", ada, ada_again)
    assert code == 0 and out.strip().endswith("identical (ignoring ids, times and dedup keys)")
    code, out, _ = run(capsys, url, "diff", ada, bob)
    assert code == 0
    assert f"a: {ada} (greet v1, succeeded, 5 events)" in out
    assert "history: same event types; first divergence at sequence 1" in out
    assert '      data.input.name: "ada" -> "bob"' in out
    assert '  steps.hello.who: "ada" -> "bob"' in out
    code, out, _ = run(capsys, url, "diff", ada, bob, "--json")
    body = json.loads(out)
    assert body["history"]["first_divergence"] == 1 and body["b"]["execution_id"] == bob
    code, _, err = run(capsys, url, "diff", ada, "nope")
    assert code == 1 and err.startswith("error: no execution nope (unknown_execution, HTTP 404)")


def test_definitions_diff(server: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    url, tmp = server
    v2 = {**V1, "steps": [{**V1["steps"][0], "timeout_seconds": 5}, V1["steps"][1]]}
    (tmp / "greet-v2.json").write_text(json.dumps(v2))
    code, out, _ = run(capsys, url, "register", str(tmp / "greet-v2.json"))
    assert code == 0 and "registered greet v2" in out
    code, out, _ = run(capsys, url, "definitions-diff", "greet")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "greet v1 -> v2: 1 change(s); compatibility: breaking"
    assert lines[1].startswith("  ~ steps.hello.timeout_seconds: null -> 5.0  [breaking:")
    code, out, _ = run(capsys, url, "definitions-diff", "greet", "1", "2", "--json")
    assert json.loads(out)["changes"][0]["path"] == "steps.hello.timeout_seconds"
    code, out, _ = run(capsys, url, "definitions-diff", "greet", "2", "2")
    assert out.strip() == "greet v2 -> v2: identical"
    code, _, err = run(capsys, url, "definitions-diff", "nope")
    assert code == 1 and "unknown workflow 'nope'" in err
