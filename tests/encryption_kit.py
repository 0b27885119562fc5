"""Shared pieces of the encryption tests: deterministic keyrings and a workflow carrying a marker."""

from __future__ import annotations

import base64
import hashlib

from orchestrator.runtime import Runtime
from schemas.builder import Workflow

MARK = "PLAINTEXT-MARKER-4f1d"  # a payload that must never appear in a raw store


def key_text(*ids: str, seed: int = 0) -> str:
    """``ORCHESTRATOR_ENCRYPTION_KEYS`` for these ids (the last is current): each id has the same
    key wherever it is listed (another ``seed``: another key under the same id)."""
    return ",".join(f"{i}={base64.b64encode(hashlib.sha256(f'{seed}/{i}'.encode()).digest()).decode()}" for i in ids)


async def run_marked(runtime: Runtime, n: int = 1, tenant: str = "default") -> list[str]:
    """Register a workflow whose input, step args and output carry MARK; run it ``n`` times."""
    await runtime.register(Workflow("secretive").task("echo", "noop", input={"secret": "input.secret"}).build())
    ids = []
    for i in range(n):
        started = await runtime.start_execution("secretive", {"secret": f"{MARK}-{i}"}, tenant=tenant)
        state = await runtime.wait(started.execution_id, timeout=10, tenant=tenant)
        assert state.status == "succeeded", state
        ids.append(started.execution_id)
    return ids
