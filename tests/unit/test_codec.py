"""Round trips of every command type and of step tasks through the Kafka codec."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from orchestrator.backends.kafka import codec
from orchestrator.backends.kafka.codec import (
    CodecError,
    decode_command,
    decode_task,
    encode_command,
    encode_task,
)
from orchestrator.core import commands
from orchestrator.core.commands import (
    AdmitExecution,
    CancelExecution,
    ChildFinished,
    Command,
    CompleteStep,
    DebounceStart,
    DeliverEvent,
    ErrorInfo,
    FailStep,
    FireTimer,
    ParentRef,
    RefuseAdmission,
    ResumeExecution,
    StartExecution,
)
from orchestrator.ports import StepTask

NOW = 1_764_000_000.123456
BASE: dict[str, Any] = {"execution_id": "exec-1", "now": NOW, "actor": "alice", "command_id": "cmd-1"}

COMMANDS: list[Command] = [
    StartExecution(
        **BASE,
        workflow="orders",
        version=3,
        input={"items": [1, 2, {"sku": "é"}], "total": 9.5},
        tenant="acme",
        dedup_key="delivery-7",
        parent=ParentRef("parent-1", "charge"),
        metadata={"trace": "abc"},
    ),
    StartExecution(execution_id="exec-2", now=NOW, workflow="orders", version=1),
    CompleteStep(**BASE, step="charge", attempt_id="att-1", output={"ok": True, "n": None}),
    FailStep(**BASE, step="charge", attempt_id="att-1", error=ErrorInfo("http.503", "busy", retryable=False)),
    FireTimer(**BASE, timer_id="t-1"),
    DeliverEvent(**BASE, name="paid", payload=[1, "two"], correlation_key="order-9"),
    DeliverEvent(**BASE, name="poke"),
    DeliverEvent(**BASE, name="poke", reason="an operator asked"),
    ChildFinished(**BASE, child_id="c-1", status="failed", output=None, error={"type": "x", "message": "y"}),
    CancelExecution(**BASE, reason="operator"),
    ResumeExecution(**BASE),
    AdmitExecution(**BASE),
    AdmitExecution(**BASE, ticket=2, epoch=7),  # the admitter epoch fences a handover
    RefuseAdmission(**BASE, reason="concurrency limit workflow key 'all' is full (1 held)"),
    DebounceStart(**BASE, input={"customer": "a", "n": 5}, due=NOW + 30),
    StartExecution(execution_id="exec-3", now=NOW, workflow="orders", version=1, not_before=NOW + 30, debounce_key='"a"'),
]


def _all_subclasses(cls: type) -> set[type]:
    """Subclasses defined in orchestrator.core.commands (``slots=True`` leaves the pre-slots classes behind)."""
    found = set()
    for sub in cls.__subclasses__():
        if getattr(commands, sub.__name__, None) is sub:
            found |= {sub} | _all_subclasses(sub)
    return found


def test_every_command_type_has_a_codec_and_a_round_trip_here() -> None:
    assert set(codec.COMMAND_TYPES.values()) == _all_subclasses(Command)
    assert {type(c) for c in COMMANDS} == _all_subclasses(Command)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_command_round_trip(command: Command) -> None:
    raw = encode_command(command)
    decoded = decode_command(raw)
    if command.command_id is None:
        assert decoded.command_id
        assert decoded == command.__class__(**{**_as_dict(command), "command_id": decoded.command_id})
    else:
        assert decoded == command
    assert type(decoded) is type(command)


def test_cloudevent_shape() -> None:
    command = COMMANDS[3]
    event = json.loads(encode_command(command))
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.orchestrator.command.FailStep"
    assert event["id"] == "cmd-1"
    assert event["subject"] == "exec-1"
    assert event["time"] == "2025-11-24T16:00:00.123456Z"
    assert event["data"]["error"] == {"type": "http.503", "message": "busy", "retryable": False}
    assert "execution_id" not in event["data"] and "command_id" not in event["data"]


def test_command_id_assigned_once_at_encode_time() -> None:
    command = CancelExecution(execution_id="e", now=NOW)
    first = decode_command(encode_command(command))
    assert first.command_id
    assert decode_command(encode_command(first)).command_id == first.command_id
    assert codec.with_command_id(first) is first


def test_task_round_trip() -> None:
    task = StepTask(
        execution_id="exec-1",
        workflow="orders",
        step="charge",
        attempt=2,
        attempt_id="att-2",
        connector="http",
        config={"url": "https://example.test", "headers": {"a": "b"}},
        args={"amount": 10},
        idempotency_key="exec-1/charge/1",
        timeout_seconds=2.5,
    )
    raw = encode_task(task)
    assert json.loads(raw)["type"] == "io.orchestrator.task.StepTask"
    assert decode_task(raw) == task
    untimed = StepTask("e", "w", "s", 1, "a", "noop", {}, None, "k")
    assert decode_task(encode_task(untimed)) == untimed


def test_a_task_carries_its_tenant_and_actor_in_a_version_2_record() -> None:
    task = StepTask("e", "w", "s", 1, "a", "noop", {}, None, "k", tenant="acme", actor="webhook:orders")
    record = json.loads(encode_task(task))
    assert record["schemaversion"] == codec.SCHEMA_VERSION == 2
    assert (record["data"]["tenant"], record["data"]["actor"]) == ("acme", "webhook:orders")
    assert decode_task(encode_task(task)) == task


# A task record as version 1 wrote it, byte for byte: no tenant, no actor.
OLD_TASK = (
    b'{"specversion":"1.0","type":"io.orchestrator.task.StepTask","source":"/orchestrator",'
    b'"id":"att-7","subject":"exec-9","datacontenttype":"application/json","schemaversion":1,'
    b'"data":{"workflow":"orders","step":"charge","attempt":1,"connector":"http",'
    b'"config":{"url":"https://example.test"},"args":{"amount":10},'
    b'"idempotency_key":"exec-9/charge/1","timeout_seconds":null}}'
)


def test_a_version_1_task_still_decodes_in_the_default_tenant() -> None:
    task = decode_task(OLD_TASK)
    assert task == StepTask(
        "exec-9", "orders", "charge", 1, "att-7", "http", {"url": "https://example.test"},
        {"amount": 10}, "exec-9/charge/1", None, tenant="default", actor=None,
    )  # fmt: skip
    without_version = json.loads(OLD_TASK)
    del without_version["schemaversion"]  # the first records may not say: version 1
    assert decode_task(json.dumps(without_version).encode()) == task


def test_a_version_1_command_still_decodes() -> None:
    old = (
        b'{"specversion":"1.0","type":"io.orchestrator.command.CompleteStep","source":"/orchestrator",'
        b'"id":"cmd-3","subject":"exec-9","time":"2025-11-24T16:00:00.123456Z",'
        b'"datacontenttype":"application/json","schemaversion":1,'
        b'"data":{"now":1764000000.123456,"actor":null,"step":"charge","attempt_id":"att-7",'
        b'"output":{"ok":true}}}'
    )
    assert decode_command(old) == CompleteStep(
        execution_id="exec-9", now=NOW, actor=None, command_id="cmd-3", step="charge", attempt_id="att-7",
        output={"ok": True},
    )  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"schemaversion": 2},  # a version-2 task must say its tenant
        {"schemaversion": 3},  # newer than this code
        {"schemaversion": True},
    ],
)
def test_bad_task_versions_are_codec_errors(change: dict[str, Any]) -> None:
    record = {**json.loads(OLD_TASK), **change}
    with pytest.raises(CodecError):
        decode_task(json.dumps(record).encode())


def _as_dict(command: Command) -> dict[str, Any]:
    return {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}


def _event(**changes: Any) -> bytes:
    event = json.loads(encode_command(COMMANDS[2]))
    event.update(changes)
    return json.dumps(event).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",
        b"not json",
        b"[1, 2]",
        _event(specversion="0.3"),
        _event(type="io.orchestrator.command.Explode"),
        _event(type="io.orchestrator.task.StepTask"),
        _event(type="com.example.Other"),
        _event(schemaversion=99),
        _event(subject=None),
        _event(data="x"),
        _event(data={"step": "s"}),  # attempt_id and now missing
        _event(data={"step": 5, "attempt_id": "a", "now": NOW}),
        _event(data={"step": "s", "attempt_id": "a", "now": "yesterday"}),
    ],
)
def test_bad_command_bytes_raise_codec_error(raw: bytes) -> None:
    with pytest.raises(CodecError):
        decode_command(raw)


def test_nested_dataclass_of_wrong_shape_is_a_codec_error() -> None:
    event = json.loads(encode_command(COMMANDS[3]))
    event["data"]["error"] = "boom"
    with pytest.raises(CodecError):
        decode_command(json.dumps(event).encode())
    event["data"]["error"] = {"message": "no type"}
    with pytest.raises(CodecError):
        decode_command(json.dumps(event).encode())


def test_unknown_data_members_are_ignored() -> None:
    event = json.loads(encode_command(COMMANDS[4]))
    event["data"]["added_later"] = 1
    assert decode_command(json.dumps(event).encode()) == COMMANDS[4]


def test_command_decoded_as_task_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_task(encode_command(COMMANDS[4]))


def test_unencodable_payload_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        encode_command(CompleteStep(execution_id="e", now=NOW, step="s", attempt_id="a", output={1, 2}))


def test_a_grant_encoded_before_admitter_epochs_decodes_without_one() -> None:
    event = json.loads(encode_command(AdmitExecution(**BASE, ticket=1)))
    del event["data"]["epoch"]
    decoded = decode_command(json.dumps(event).encode())
    assert isinstance(decoded, AdmitExecution)
    assert (decoded.ticket, decoded.epoch) == (1, None)


TASK = StepTask("exec-1", "orders", "charge", 1, "att-1", "http", {"url": "u"}, {"n": 1}, "exec-1/charge")


@pytest.mark.parametrize(
    ("field", "value", "fits"),
    [
        ("attempt", 2, True),
        ("attempt", True, False),  # a bool is not an int here
        ("attempt", 2.0, False),
        ("attempt", None, False),
        ("timeout_seconds", 5, True),  # an int is a float
        ("timeout_seconds", 5.5, True),
        ("timeout_seconds", None, True),
        ("timeout_seconds", False, False),
        ("timeout_seconds", "5", False),
        ("tenant", "acme", True),
        ("tenant", None, False),
        ("tenant", 1, False),
        ("actor", None, True),
        ("config", {"a": [1]}, True),
        ("config", [], False),
        ("secret_args", [["a", 0]], True),
        ("secret_args", {"a": 0}, False),
        ("args", object, True),  # Any: replaced below by each JSON kind
    ],
)
def test_each_field_takes_the_json_values_its_type_names(field: str, value: Any, fits: bool) -> None:
    values = [value] if value is not object else [None, True, 1, 1.5, "s", [1], {"k": 1}]
    for item in values:
        record = json.loads(encode_task(TASK))
        record["data"][field] = item
        raw = json.dumps(record).encode()
        if fits:
            assert getattr(decode_task(raw), field) == item
        else:
            with pytest.raises(CodecError, match=f"StepTask.{field}"):
                decode_task(raw)
