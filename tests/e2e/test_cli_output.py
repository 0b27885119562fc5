"""What the CLI writes, as a subprocess: machine-readable off a terminal and with --json, progress
on a terminal (a pseudo-terminal stands in for one)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data_workloads import seed_sync
from tests.e2e.serverproc import REPO, cli_env

ESC = "\x1b"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('output')}/source.db"
    return cli_env(url, {"TERM": "xterm-256color"}), seed_sync(url)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_on_terminal(env: dict[str, str], *args: str, stdout_too: bool = False) -> tuple[int, str, str]:
    """Run with stderr (and with ``stdout_too`` stdout) on a pseudo-terminal: (exit, piped stdout,
    what the terminal showed)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal if stdout_too else subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    piped = process.stdout.read().decode() if process.stdout else ""
    if process.stdout:
        process.stdout.close()
    return process.wait(timeout=60), piped, shown.decode(errors="replace")


def test_export_json_to_stdout_is_the_export_and_one_report(
    seeded: tuple[dict[str, str], list[str]],
) -> None:
    env, ids = seeded
    result = run(env, "export", "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["kind"] == "header" and records[-1]["kind"] == "footer"
    assert records[-1]["executions"] == len(ids)
    report = json.loads(result.stderr)  # one JSON document, nothing else
    assert report["executions"] == len(ids)
    assert ESC not in result.stdout + result.stderr


def test_off_a_terminal_the_output_keeps_its_plain_format(
    seeded: tuple[dict[str, str], list[str]], tmp_path: Path
) -> None:
    env, ids = seeded
    result = run(env, "verify")
    assert result.returncode == 0, result.stderr
    assert f"verified {len(ids)} executions" in result.stdout.splitlines()[-1]
    assert ESC not in result.stdout and result.stderr == ""
    result = run(env, "export", "-o", str(tmp_path / "dump.jsonl"))
    assert result.stdout.startswith(f"exported 5 definitions, {len(ids)} executions,")
    assert result.stderr == ""


def test_on_a_terminal_progress_goes_to_stderr_and_stdout_stays_plain(
    seeded: tuple[dict[str, str], list[str]],
) -> None:
    env, ids = seeded
    code, stdout, shown = run_on_terminal(env, "verify")
    assert code == 0, shown
    assert "verifying" in shown and "executions" in shown and ESC in shown  # the progress display
    assert f"verified {len(ids)} executions" in stdout and ESC not in stdout


def test_json_on_a_terminal_is_only_json(seeded: tuple[dict[str, str], list[str]]) -> None:
    env, ids = seeded
    code, _, shown = run_on_terminal(env, "verify", "--json", stdout_too=True)
    assert code == 0, shown
    assert ESC not in shown
    assert json.loads(shown)["executions"] == len(ids)
