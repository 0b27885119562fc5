"""Real ``orchestrator worker`` processes for the failover tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "worker"], cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def stop_workers(workers: Iterable[subprocess.Popen[bytes]]) -> None:
    """Terminate the ones still running; kill those that do not stop within 15 s."""
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
