"""A per-connector rate limit in a running process: calls across workflows are spread at the
rate (throttled, all of them run), and the wait is not counted as the step's time."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connectors.base import Connectors, StepCall
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings, SettingsError
from schemas.builder import Workflow


class Clocked:
    name = "api"

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def invoke(self, call: StepCall) -> Any:
        self.calls.append(time.monotonic())
        return None


async def test_calls_across_workflows_share_the_connector_limit() -> None:
    api = Clocked()
    settings = Settings(event_log_url="memory://", connector_rate_limits="api=20")
    async with Runtime(settings, connectors=Connectors([api])) as runtime:
        for name in ("a", "b"):
            await runtime.register(Workflow(name).task("s", "api").build())
        started = [await runtime.start_execution(name) for name in ("a", "b") * 10]
        done = [await runtime.wait(s.execution_id, timeout=30) for s in started]
    assert {d.status for d in done} == {"succeeded"}  # throttled, never dropped
    assert len(api.calls) == 20
    span = max(api.calls) - min(api.calls)
    assert span >= 19 / 20 * 0.9  # 20 calls at 20/s take about 0.95 s


def test_a_bad_limit_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="CONNECTOR_RATE_LIMITS"):
        Runtime(Settings(event_log_url="memory://", connector_rate_limits="api=fast"))
