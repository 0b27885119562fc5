"""The child side of isolated ``python`` steps: ``python -m connectors.isolated_child``.

Reads one JSON request per line on stdin, runs the named function under the request's limits,
writes one JSON reply per line to the protocol stream (the original stdout; the function's own
prints go to stderr). Limits, per call:

- ``cpu_seconds``: ``RLIMIT_CPU`` set to the CPU time used so far plus the budget. Past it the
  kernel sends SIGXCPU and the process dies; the parent reports ``resource.cpu``.
- ``memory_bytes``: ``RLIMIT_AS`` set to the address space mapped now plus the budget. An
  allocation past it fails with MemoryError; the reply says ``resource.memory`` and the process
  exits, so the pool replaces it.

Each reply carries the call's CPU seconds and peak resident memory (``VmHWM``, reset before the
call through ``/proc/self/clear_refs`` where the kernel allows it).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import resource
import sys
from typing import Any, BinaryIO

from connectors.base import ConnectorError, StepCall
from connectors.python import load_target, step_arguments

MEMORY_ERROR_EXIT = 3
READY = b'{"ready":true}\n'


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    except OSError:
        pass


def _limit_cpu(seconds: float | None) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if seconds is None:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        return
    soft = math.ceil(_cpu_used() + seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _limit_memory(limit: int | None) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if limit is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    mapped = (_status_kib("VmSize") or 0) * 1024
    soft = mapped + limit
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def call_of(request: dict[str, Any]) -> StepCall:
    return StepCall(
        execution_id=request["execution_id"],
        workflow=request["workflow"],
        step=request["step"],
        attempt=int(request["attempt"]),
        idempotency_key=request["idempotency_key"],
        config=request.get("config") or {},
        args=request.get("args"),
        timeout_seconds=request.get("timeout_seconds"),
        tenant=request.get("tenant", "default"),
        actor=request.get("actor"),
    )


def run(request: dict[str, Any]) -> dict[str, Any]:
    """Run one call; the reply: ``{"output", "cpu_seconds", "peak_memory_bytes"}`` or ``{"error": ...}``."""
    call = call_of(request)
    limits = request.get("limits") or {}
    _reset_peak()
    cpu_before = _cpu_used()
    try:
        target = load_target(call.config.get("function"))
        args, kwargs = step_arguments(target, call)
        _limit_memory(limits.get("memory_bytes"))
        _limit_cpu(limits.get("cpu_seconds"))
        try:
            result = target.function(*args, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        finally:
            _limit_cpu(None)
            _limit_memory(None)
        reply: dict[str, Any] = {"output": result}
    except MemoryError:
        _limit_memory(None)
        reply = {"error": {"type": "resource.memory", "message": "the step went past its memory limit", "retryable": False}}
    except ConnectorError as exc:
        reply = {"error": {"type": exc.type, "message": exc.message, "retryable": exc.retryable}}
    except Exception as exc:
        reply = {"error": {"type": type(exc).__name__, "message": str(exc)[:1000], "retryable": True}}
    reply["cpu_seconds"] = round(_cpu_used() - cpu_before, 6)
    peak = _status_kib("VmHWM")
    reply["peak_memory_bytes"] = None if peak is None else peak * 1024
    return reply


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    replies.write(READY)  # imports done: the parent's wall clock starts with the first call
    replies.flush()
    for line in requests:
        reply = run(json.loads(line))
        try:
            encoded = json.dumps(reply, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            error = {"type": "invalid_output", "message": f"the result is not JSON: {exc}"[:1000], "retryable": False}
            encoded = json.dumps({**reply, "output": None, "error": error}).encode()
        replies.write(encoded + b"\n")
        replies.flush()
        if reply.get("error", {}).get("type") == "resource.memory":
            sys.exit(MEMORY_ERROR_EXIT)  # the heap may be in pieces: the pool starts a new process


def main() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in a step goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
