"""JSON log lines (ORCHESTRATOR_LOG_FORMAT=json) carry the context the engine and worker bind."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest

from connectors.base import Connectors, StepCall
from orchestrator import logcontext
from orchestrator.observability.logs import JsonFormatter, configure
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings, SettingsError
from schemas.builder import Workflow

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
step_log = logging.getLogger("tests.unit.logging_step")


class LoggingStep:
    name = "logs"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def invoke(self, call: StepCall) -> Any:
        step_log.warning("working on %s", call.step)
        return {}


def capture(logger: logging.Logger) -> tuple[io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(node="node-a"))
    logger.addHandler(handler)
    return stream, handler


async def test_a_step_log_line_names_its_execution_workflow_step_tenant_and_trace() -> None:
    stream, handler = capture(step_log)
    try:
        async with Runtime(Settings(event_log_url="memory://"), connectors=Connectors([LoggingStep()])) as rt:
            await rt.register(Workflow("logged").task("write", "logs").build())
            started = await rt.start_execution("logged", {}, tenant="acme", metadata={"traceparent": VALID})
            assert (await rt.wait(started.execution_id, timeout=10, tenant="acme")).status == "succeeded"
    finally:
        step_log.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[0])
    assert line == {
        "time": line["time"],
        "level": "WARNING",
        "logger": "tests.unit.logging_step",
        "message": "working on write",
        "node": "node-a",
        "execution_id": started.execution_id,
        "workflow": "logged",
        "step": "write",
        "tenant": "acme",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    assert line["time"].endswith("Z") and "T" in line["time"]


async def test_bindings_nest_and_stay_in_their_task() -> None:
    seen: dict[str, dict[str, str]] = {}

    async def other() -> None:
        with logcontext.bound(execution_id="b"):
            await asyncio.sleep(0.01)
            seen["other"] = dict(logcontext.current())

    with logcontext.bound(execution_id="a", workflow="w"):
        task = asyncio.create_task(other())
        with logcontext.bound(step="s", tenant=None):
            await asyncio.sleep(0.02)
            seen["inner"] = dict(logcontext.current())
        seen["outer"] = dict(logcontext.current())
        await task
    assert seen["inner"] == {"execution_id": "a", "workflow": "w", "step": "s"}
    assert seen["outer"] == {"execution_id": "a", "workflow": "w"}
    assert seen["other"] == {"execution_id": "b", "workflow": "w"}  # copied at creation, then its own
    assert dict(logcontext.current()) == {}


def test_an_exception_and_odd_arguments_are_formatted() -> None:
    stream, handler = capture(step_log)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            step_log.exception("failed: %s", object())
    finally:
        step_log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"].startswith("failed: <object") and "ValueError: boom" in line["exception"]
    assert "execution_id" not in line


def test_the_log_format_setting() -> None:
    assert Settings.from_env({"ORCHESTRATOR_LOG_FORMAT": "JSON"}).log_format == "json"
    assert Settings.from_env({}).log_format == "text"
    with pytest.raises(SettingsError, match="ORCHESTRATOR_LOG_FORMAT must be one of text, json"):
        Settings.from_env({"ORCHESTRATOR_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="log format"):
        configure(logging.INFO, "xml")


def test_the_metrics_settings() -> None:
    assert Settings.from_env({}).metrics_port is None and Settings.from_env({}).metrics is True
    parsed = Settings.from_env({"ORCHESTRATOR_METRICS_PORT": "0", "ORCHESTRATOR_METRICS_WORKFLOWS": "0"})
    assert (parsed.metrics_port, parsed.metrics_workflows) == (0, 0)
    assert Settings.from_env({"ORCHESTRATOR_METRICS": "false"}).metrics is False
    with pytest.raises(SettingsError, match="ORCHESTRATOR_METRICS_PORT must be a port number"):
        Settings.from_env({"ORCHESTRATOR_METRICS_PORT": "70000"})
    with pytest.raises(SettingsError, match="ORCHESTRATOR_METRICS_WORKFLOWS must be 0 or more"):
        Settings.from_env({"ORCHESTRATOR_METRICS_WORKFLOWS": "-1"})
