"""The README's commands and code are executed, so they stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_opens_with_exactly_two_commands() -> None:
    first = code_blocks("sh")[0].strip().splitlines()
    assert len(first) == 2
    assert README.index(code_blocks("sh")[0]) < 200  # the very first lines


def test_the_run_command_works(tmp_path: Path) -> None:
    run_command = code_blocks("sh")[0].strip().splitlines()[0]
    env = {**os.environ, "ORCHESTRATOR_EVENT_LOG_URL": f"sqlite:///{tmp_path}/readme.db"}
    result = subprocess.run(
        run_command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "-> 202" in result.stdout
    assert "ExecutionSucceeded" in result.stdout
    assert "status: succeeded" in result.stdout


def test_the_python_example_runs() -> None:
    [example] = code_blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", example], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "succeeded hello ada"
    assert lines[1] == "1 ExecutionStarted" and lines[-1].endswith("ExecutionSucceeded")
