"""A pool of child processes for isolated ``python`` steps (``isolation: process``).

Each child (``connectors.isolated_child``) runs one call at a time in its own process group, so
a step past its wall time is stopped for real: the parent kills the whole group with SIGKILL,
even if the function spawned processes of its own or blocks in C code. A step past its CPU budget
dies of SIGXCPU, and one past its memory budget exits after answering. Either way the pool
starts a fresh child for the next call. Children are started on demand, up to ``size``, and are
all killed in ``stop``. Typed errors, which retry policies can match:

- ``timeout`` (retryable): no answer within the wall time;
- ``resource.cpu``: past the CPU budget;
- ``resource.memory``: past the memory budget, or killed by the kernel's OOM killer;
- ``isolation.crashed`` (retryable): the child died any other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError, StepCall
from orchestrator.lifecycle import Lifecycle

CHILD = "connectors.isolated_child"
START_TIMEOUT = 60.0  # seconds a new child may take to import and say it is ready
MAX_REPLY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per call; None: unlimited."""

    cpu_seconds: float | None = None
    memory_bytes: int | None = None
    wall_seconds: float | None = None

    def to_request(self) -> dict[str, Any]:
        return {"cpu_seconds": self.cpu_seconds, "memory_bytes": self.memory_bytes}


@dataclass(frozen=True, slots=True)
class IsolatedResult:
    output: Any
    wall_seconds: float
    cpu_seconds: float | None
    peak_memory_bytes: int | None


class _Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def kill(self) -> None:
        """SIGKILL the child's whole process group (what it spawned goes too)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def wait(self) -> int:
        return await self.process.wait()


class ProcessPool(Lifecycle):
    """At most ``size`` isolated calls at once; the others wait for a child."""

    def __init__(self, size: int = 2, python: str = sys.executable) -> None:
        if size < 1:
            raise ValueError("the pool needs at least one process")
        self.size = size
        self.python = python
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._slots = asyncio.Semaphore(size)
        self._open = False
        self.replaced = 0  # children that died or were killed and replaced

    async def start(self) -> None:
        self._open = True

    async def stop(self) -> None:
        self._open = False
        children, self._all, self._idle = self._all, set(), []
        for child in children:
            child.kill()
        for child in children:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(child.wait(), 5)

    async def run(self, call: StepCall, limits: Limits) -> IsolatedResult:
        if not self._open:
            raise RuntimeError("the process pool is not started")
        async with self._slots:
            child = self._idle.pop() if self._idle else await self._spawn()
            began = time.perf_counter()
            keep = False
            try:
                reply = await self._ask(child, call, limits)
                keep = child.alive and ("error" not in reply or _recoverable(reply))
            finally:
                if keep and self._open:
                    self._idle.append(child)
                else:
                    await self._discard(child)
            wall = time.perf_counter() - began
        error = reply.get("error")
        if error is not None:
            raise ConnectorError(str(error["type"]), str(error["message"]), retryable=bool(error["retryable"]))
        return IsolatedResult(reply.get("output"), wall, reply.get("cpu_seconds"), reply.get("peak_memory_bytes"))

    async def _spawn(self) -> _Child:
        process = await asyncio.create_subprocess_exec(
            self.python, "-m", CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: killpg reaches what it spawns
            limit=MAX_REPLY_BYTES,
        )  # fmt: skip
        child = _Child(process)
        self._all.add(child)
        assert process.stdout is not None
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except BaseException:
            await self._discard(child)
            raise
        if not ready.startswith(b'{"ready"'):
            await self._discard(child)
            raise ConnectorError("isolation.crashed", "a step process did not start", retryable=True)
        return child

    async def _discard(self, child: _Child) -> None:
        child.kill()
        self._all.discard(child)
        self.replaced += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(child.wait(), 5)

    async def _ask(self, child: _Child, call: StepCall, limits: Limits) -> dict[str, Any]:
        process = child.process
        assert process.stdin is not None and process.stdout is not None
        request = {
            "execution_id": call.execution_id,
            "workflow": call.workflow,
            "step": call.step,
            "attempt": call.attempt,
            "idempotency_key": call.idempotency_key,
            "config": dict(call.config),
            "args": call.args,
            "timeout_seconds": call.timeout_seconds,
            "tenant": call.tenant,
            "actor": call.actor,
            "limits": limits.to_request(),
        }
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), limits.wall_seconds)
        except TimeoutError:
            child.kill()
            raise ConnectorError(
                "timeout", f"no answer within {limits.wall_seconds:g}s: the step's process was killed", retryable=True
            ) from None
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        except BaseException:  # cancelled (the worker's own timeout): stop the call for real
            child.kill()
            raise
        if not line:
            return {"error": _death(await child.wait(), limits)}
        reply: dict[str, Any] = json.loads(line)
        return reply


def _recoverable(reply: dict[str, Any]) -> bool:
    """An error answer from a child that is still sound (not a resource error)."""
    error = reply.get("error") or {}
    return not str(error.get("type", "")).startswith("resource.")


def _death(returncode: int, limits: Limits) -> dict[str, Any]:
    if returncode == -signal.SIGXCPU:
        return {"type": "resource.cpu", "message": f"the step used more than {limits.cpu_seconds:g}s of CPU", "retryable": False}
    if returncode == -signal.SIGKILL and limits.memory_bytes is not None:
        return {"type": "resource.memory", "message": "the step's process was killed (out of memory)", "retryable": False}
    return {"type": "isolation.crashed", "message": f"the step's process died (exit {returncode})", "retryable": True}
