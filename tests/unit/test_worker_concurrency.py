"""ORCHESTRATOR_WORKER_CONCURRENCY: how many tasks a process runs at once, on either transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectors.base import Connectors, StepCall
from orchestrator.backends.inprocess import InProcessTransport
from orchestrator.backends.kafka.transport import KafkaTransport
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings, SettingsError
from schemas.builder import Workflow
from tests.fake_sources import eventually


class Gate:
    """Holds every call until released; counts the calls running now."""

    name = "gate"

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.open = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.open.wait()
        finally:
            self.running -= 1
        return {}


@pytest.mark.parametrize(("setting", "url", "expected"), [(2, "inprocess://", 2), (64, "inprocess://", 5)])
async def test_the_setting_bounds_the_tasks_running_at_once(setting: int, url: str, expected: int) -> None:
    gate = Gate()
    settings = Settings(event_log_url="memory://", transport_url=url, worker_concurrency=setting)
    async with Runtime(settings, connectors=Connectors([gate])) as runtime:
        await runtime.register(Workflow("held").task("wait", "gate").build())
        started = [await runtime.start_execution("held") for _ in range(5)]
        await eventually(lambda: gate.running == expected)
        transport = runtime.transport
        assert isinstance(transport, InProcessTransport)
        assert transport.backlog == 5 - expected  # the rest wait in the queue, not in a connector
        gate.open.set()
        for one in started:
            assert (await runtime.wait(one.execution_id, timeout=5)).status == "succeeded"
    assert gate.most == expected


def test_a_concurrency_in_the_transport_url_wins_over_the_setting() -> None:
    def transport(url: str, setting: int) -> Any:
        return Runtime(Settings(event_log_url="memory://", transport_url=url, worker_concurrency=setting)).transport

    assert transport("inprocess://", 3).concurrency == 3
    assert transport("inprocess://?concurrency=5", 3).concurrency == 5
    assert transport("kafka://127.0.0.1:9092", 7).options.concurrency == 7  # built, not started
    assert transport("kafka://127.0.0.1:9092?concurrency=2", 7).options.concurrency == 2
    assert KafkaTransport.from_url("kafka://127.0.0.1:9092").options.concurrency == 64
    assert InProcessTransport.from_url("inprocess://").concurrency == 64


def test_the_setting_is_read_from_the_environment_and_must_be_positive() -> None:
    assert Settings.from_env({"ORCHESTRATOR_WORKER_CONCURRENCY": "5"}).worker_concurrency == 5
    assert Settings.from_env({}).worker_concurrency == 64
    for bad in ("0", "-3"):
        with pytest.raises(SettingsError, match="ORCHESTRATOR_WORKER_CONCURRENCY must be at least 1"):
            Settings.from_env({"ORCHESTRATOR_WORKER_CONCURRENCY": bad})
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        InProcessTransport.from_url("inprocess://?concurrency=0")
    with pytest.raises(ValueError, match="is not an integer"):
        InProcessTransport.from_url("inprocess://?concurrency=many")
    with pytest.raises(ValueError, match="concurrencies must be >= 1"):
        KafkaTransport.from_url("kafka://127.0.0.1:9092", 0)
