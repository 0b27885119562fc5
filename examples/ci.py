"""Functions of the GitHub push example (``examples/github_push.yaml``): fake CI, no network."""

from __future__ import annotations

import time
from typing import Any


def lint(repository: str, commit: str, files: list[str] | None = None) -> dict[str, Any]:
    """Pretend to lint the changed files."""
    time.sleep(0.2)
    checked = [f for f in files or [] if f.endswith(".py")]
    return {"check": "lint", "passed": True, "files": len(checked), "commit": commit[:7]}


def run_tests(repository: str, commit: str, ref: str, message: str = "") -> dict[str, Any]:
    """Pretend to run the test suite; a commit message containing '[fail]' fails it."""
    time.sleep(0.3)
    failures = 1 if "[fail]" in (message or "") else 0
    return {"check": "tests", "passed": failures == 0, "tests": 128, "failures": failures, "ref": ref}


def notify(repository: str, commit: str, status: str, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Tell the team; here the message is printed and returned instead of posted to chat."""
    summary = ", ".join(f"{c.get('check')}={'ok' if c.get('passed') else 'FAILED'}" for c in checks)
    message = f"[{repository}] {commit[:7]}: checks {status} ({summary})"
    print(message, flush=True)
    return {"message": message, "status": status}
