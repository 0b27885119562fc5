"""Shared by the secret-read audit tests: run a step resolving a stored secret, and read back
the ``secrets:resolve`` records the runtime's audit trail holds."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.runtime import Runtime
from schemas.builder import Workflow

VALUE = "resolved-secret-7a3c"


async def run_with_secret(runtime: Runtime, tenant: str = "acme", name: str = "TOKEN") -> tuple[str, str]:
    """Run a workflow whose step reads ``secret(name)``; its execution id and final status."""
    await runtime.register(Workflow("uses_secret").task("call", "noop", input={"token": f"secret('{name}')"}).build())
    started = await runtime.start_execution("uses_secret", {}, tenant=tenant)
    state = await runtime.wait(started.execution_id, timeout=30, tenant=tenant)
    return started.execution_id, state.status


async def resolve_records(runtime: Runtime) -> list[dict[str, Any]]:
    entries = await runtime.audit.log.read(0, 1000)
    bodies = [json.loads(e.body) for e in entries]
    assert not any(VALUE.encode() in e.body for e in entries)  # never the value
    return [b for b in bodies if b["action"] == "secrets:resolve"]
