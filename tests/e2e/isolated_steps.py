"""Functions for isolated-step tests (run in child processes of the pool)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any


def echo(value: Any = None) -> Any:
    print("this goes to stderr, not into the protocol")
    return {"echo": value, "pid": os.getpid()}


def burn(seconds: float = 60.0) -> int:
    """Spin the CPU."""
    end = time.process_time() + seconds
    n = 0
    while time.process_time() < end:
        n += 1
    return n


def hog(megabytes: int = 1024) -> int:
    """Hold ever more memory."""
    held = [bytearray(1024 * 1024) for _ in range(megabytes)]
    return len(held)


def sleepy(seconds: float = 60.0, pid_file: str | None = None) -> str:
    """Start a grandchild, then sleep (the wall limit must stop both)."""
    if pid_file:
        grandchild = subprocess.Popen(["sleep", "300"])
        with open(pid_file, "w", encoding="ascii") as out:
            out.write(str(grandchild.pid))
    time.sleep(seconds)
    return "woke"


def crash() -> None:
    os._exit(7)


def slow_first(call: Any) -> dict[str, int]:
    """Sleeps on the first attempt (timing out), answers at once on the next: a retry must not
    wait for the first attempt's sleep."""
    if call.attempt == 1:
        time.sleep(60)
    return {"attempt": call.attempt}
