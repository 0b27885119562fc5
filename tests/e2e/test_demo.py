"""``orchestrator demo``: a signed webhook over real HTTP, the execution, its history; exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.serverproc import cli_env


def test_demo_runs_a_webhook_to_success_in_a_fresh_directory(tmp_path: Path) -> None:
    env = cli_env("unused")
    del env["ORCHESTRATOR_EVENT_LOG_URL"]  # the demo's default: orchestrator-demo.db in the cwd
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert "/hooks/github-push" in out and "-> 202 {" in out
    assert "ExecutionSucceeded" in out and "status: succeeded" in out
    assert "checks passed (lint=ok, tests=ok)" in out
    assert (tmp_path / "orchestrator-demo.db").is_file()


def test_demo_uses_the_configured_event_log(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/configured.db")
    env["ORCHESTRATOR_SECRET_GITHUB_WEBHOOK"] = "s3cret-from-env"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert (tmp_path / "configured.db").is_file()
    assert not (tmp_path / "orchestrator-demo.db").exists()
