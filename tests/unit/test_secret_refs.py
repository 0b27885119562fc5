"""Secret references end to end: validated at registration, recorded as references, resolved
only in the worker, redacted from outputs and errors, never in the raw event log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Connectors
from orchestrator.core.state import ExecutionState
from orchestrator.engine.secret_refs import REDACTED, redact, redact_text
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import ConnectorError, StepCall
from orchestrator.runtime import Runtime
from orchestrator.secrets.sealing import new_key
from orchestrator.settings import Settings
from schemas.envelope import Envelope
from schemas.validation import DefinitionError, parse_definition
from tests.unit.test_secret_stores import sqlite_dump

STORED = "st0red-t0ken-value"
FROM_ENV = "env-pa55word-value"


class Recorder(Lifecycle):
    """Echoes what it was called with; with ``fail`` in its args, fails quoting it."""

    name = "rec"

    def __init__(self) -> None:
        self.calls: list[StepCall] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def invoke(self, call: StepCall) -> Any:
        self.calls.append(call)
        if isinstance(call.args, dict) and call.args.get("crash"):
            raise RuntimeError(f"a bug holding {call.config}")
        if isinstance(call.args, dict) and call.args.get("fail"):
            raise ConnectorError("upstream.refused", f"the server said no to {call.config}", retryable=False)
        return {"config": call.config, "args": call.args, "key": {call.config.get("token", "x"): 1}}


def flow(**step: Any) -> Any:
    task = {"name": "call", "type": "task", "connector": "rec", **step}
    return parse_definition({"name": "secretive", "steps": [task]})


async def run(tmp_path: Path, definition: Any, input: Any = None) -> tuple[ExecutionState, Recorder, list[Envelope]]:
    recorder = Recorder()
    settings = Settings(
        event_log_url=f"sqlite:///{tmp_path}/log.db",
        secrets_key=new_key(),
        secrets={"DB_PASSWORD": FROM_ENV},
    )
    async with Runtime(settings, connectors=Connectors([recorder])) as runtime:
        await runtime.secrets.put("default", "API_TOKEN", STORED)
        await runtime.register(definition)
        started = await runtime.start_execution(definition.name, input)
        state = await runtime.wait(started.execution_id, timeout=10)
        events = await runtime.history(started.execution_id)
    return state, recorder, events


async def test_references_are_resolved_in_the_worker_only(tmp_path: Path) -> None:
    definition = flow(
        config={"token": {"secret": "API_TOKEN"}, "plain": "x"},
        input={"password": "secret('DB_PASSWORD')", "nested": ["secret('API_TOKEN')"], "name": "input.name",
               "plain": {"secret": "input.name"}},
    )
    state, recorder, events = await run(tmp_path, definition, {"name": "ada"})
    [call] = recorder.calls
    assert call.config == {"token": STORED, "plain": "x"}
    assert call.args == {"password": FROM_ENV, "nested": [STORED], "name": "ada", "plain": {"secret": "ada"}}
    scheduled = next(e for e in events if e.type == "StepScheduled")
    assert scheduled.data["config"]["token"] == {"secret": "API_TOKEN"}
    assert scheduled.data["args"]["password"] == {"secret": "DB_PASSWORD"}
    assert scheduled.data["secret_args"] == [["password"], ["nested", 0]]
    assert state.status == "succeeded"
    assert state.output["config"]["token"] == REDACTED and state.output["args"]["password"] == REDACTED
    assert state.output["key"] == {REDACTED: 1}
    dump = await asyncio.to_thread(sqlite_dump, tmp_path / "log.db")
    assert "StepScheduled" in dump and "API_TOKEN" in dump  # the log is there, with the names
    for value in (STORED, FROM_ENV):
        assert value not in dump and value.encode().hex() not in dump.lower()


async def test_errors_are_redacted(tmp_path: Path) -> None:
    definition = flow(config={"token": {"secret": "API_TOKEN"}}, input={"fail": "`true`"})
    state, _, events = await run(tmp_path, definition)
    assert state.status == "failed"
    failed = next(e for e in events if e.type == "StepFailed")
    assert failed.data["error"]["type"] == "upstream.refused"
    assert STORED not in str(failed.data) and REDACTED in failed.data["error"]["message"]


async def test_a_crashing_connector_logs_no_value(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    definition = flow(config={"token": {"secret": "API_TOKEN"}}, input={"crash": "`true`"})
    with caplog.at_level(logging.DEBUG):
        state, _, events = await run(tmp_path, definition)
    assert state.status == "failed"
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "a bug holding" in logged and STORED not in logged
    assert STORED not in str([e.data for e in events])


async def test_a_missing_secret_fails_the_step_once_with_a_typed_error(tmp_path: Path) -> None:
    definition = flow(config={"token": {"secret": "NOT_SET"}}, retry={"max_attempts": 5})
    state, recorder, events = await run(tmp_path, definition)
    assert state.status == "failed" and recorder.calls == []
    failed = [e for e in events if e.type == "StepFailed"]
    assert len(failed) == 1 and failed[0].data["error"]["type"] == "secret.missing"
    assert failed[0].data["error"]["retryable"] is False
    assert "'NOT_SET'" in failed[0].data["error"]["message"]


async def test_a_reference_arriving_as_data_is_not_resolved(tmp_path: Path) -> None:
    definition = flow(input={"from_input": "input.x", "declared": "secret('API_TOKEN')"})
    state, recorder, _ = await run(tmp_path, definition, {"x": {"secret": "API_TOKEN"}})
    [call] = recorder.calls
    assert call.args == {"from_input": {"secret": "API_TOKEN"}, "declared": STORED}
    assert state.status == "succeeded"


async def test_another_tenants_secret_is_not_found(tmp_path: Path) -> None:
    recorder = Recorder()
    settings = Settings(event_log_url="memory://", secrets_key=new_key())
    async with Runtime(settings, connectors=Connectors([recorder])) as runtime:
        await runtime.secrets.put("acme", "API_TOKEN", STORED)
        await runtime.register(flow(config={"token": {"secret": "API_TOKEN"}}))
        started = await runtime.start_execution("secretive", None)
        state = await runtime.wait(started.execution_id, timeout=10)
    assert state.status == "failed" and state.error is not None and state.error["type"] == "secret.missing"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"config": {"t": {"secret": "a-b"}}}, "invalid secret reference"),
        ({"config": {"t": {"secret": 5}}}, "invalid secret reference"),
        ({"config": {"t": "secret('A')"}}, "config is not an expression"),
        ({"input": {"t": "join('', [secret('A')])"}}, "must be the whole expression"),
        ({"input": {"t": "secret('1A')"}}, "invalid secret reference"),
        ({"output": "secret('A')"}, "resolved only in a task step's input"),
    ],
)
def test_malformed_references_are_refused_at_registration(step: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        flow(**step)
    assert any(message in p.message for p in info.value.problems), info.value.problems


def test_references_outside_task_steps_are_refused() -> None:
    steps = [
        {"name": "pick", "type": "choice", "choices": [{"when": "secret('A')", "next": "done"}], "default": "done"},
        {"name": "done", "type": "succeed"},
    ]
    with pytest.raises(DefinitionError, match="resolved only in a task step"):
        parse_definition({"name": "w", "steps": steps})
    child = [{"name": "c", "type": "subworkflow", "workflow": "w", "input": {"t": "secret('A')"}}]
    with pytest.raises(DefinitionError, match="resolved only in a task step"):
        parse_definition({"name": "w", "steps": child})


def test_redaction_covers_encoded_forms_and_keys() -> None:
    value = "p@ss word/1"
    assert redact({"a": [f"x{value}y", 1], value: True}, [value]) == {"a": [f"x{REDACTED}y", 1], REDACTED: True}
    assert redact_text("url?pw=p%40ss%20word%2F1", [value]) == f"url?pw={REDACTED}"
    assert redact_text('{"pw": "a\\"b"}', ['a"b']) == '{"pw": "' + REDACTED + '"}'
    assert redact("untouched", []) == "untouched"
