"""Every decoder of inbound JSON answers an undecodable message with its one error type (so the
caller dead-letters or answers 400): huge integers, deep nesting, invalid UTF-8, NaN and
numbers beyond a float, unpaired surrogates. And trigger routing turns any expression failure
into a dead letter, never an exception that would redeliver the message forever."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.api.requests import parse_json
from orchestrator.backends.kafka.codec import CodecError, decode_command, decode_task, encode_command
from orchestrator.cli.args import finite_number, parse_json_arg
from orchestrator.cli.errors import CliError
from orchestrator.cli.main import build_parser
from orchestrator.core.commands import CompleteStep
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import cloudevents as ce
from schemas.builder import Workflow
from schemas.definition import KafkaTrigger
from schemas.loader import load_data
from schemas.validation import DefinitionError
from triggers.inbound import BadMessage, InboundMessage, Router, decode_json
from triggers.kafka_source import KafkaTriggerSource

POISON = {
    "huge-int": (b'{"n": ' + b"7" * 5000 + b"}", "longer than 4300 digits"),
    "deep": (b'{"a": ' + b"[" * 50_000 + b"}", "nested deeper than"),
    "not-utf8": (b'{"a": "\xc3\x28"}', "not UTF-8"),
    "nan": (b'{"a": NaN}', "NaN is not valid JSON"),
    "infinity": (b"[Infinity]", "Infinity is not valid JSON"),
    "1e400": (b'{"a": 1e400}', "too large for a JSON number"),
    "surrogate": (b'{"a": "\\udbff"}', "unpaired surrogate"),
}
ATTRIBUTES = {"specversion": "1.0", "id": "1", "source": "/t", "type": "t.created"}


def structured(data: bytes) -> bytes:
    """A structured-mode CloudEvent whose data is the poison (spliced in as raw JSON text)."""
    head = json.dumps(ATTRIBUTES)[:-1].encode()
    return head + b', "data": ' + data + b"}"


DECODERS: dict[str, Callable[[bytes], Any]] = {
    "http plain": lambda body: ce.from_http(body, {"Content-Type": "application/json"}),
    "http binary": lambda body: ce.from_http(body, {f"ce-{k}": v for k, v in ATTRIBUTES.items()}),
    "http structured": lambda body: ce.from_http(structured(body), {"Content-Type": ce.STRUCTURED}),
    "kafka plain": lambda body: ce.from_kafka(body, []),
    "kafka binary": lambda body: ce.from_kafka(body, [(f"ce_{k}", v.encode()) for k, v in ATTRIBUTES.items()]),
    "kafka structured": lambda body: ce.from_kafka(structured(body), [("content-type", ce.STRUCTURED.encode())]),
    "amqp plain": lambda body: ce.from_amqp(body, {}, None),
    "amqp binary": lambda body: ce.from_amqp(body, {f"cloudEvents_{k}": v for k, v in ATTRIBUTES.items()}, None),
    "amqp structured": lambda body: ce.from_amqp(structured(body), {}, ce.STRUCTURED),
    "trigger body": decode_json,
}


@pytest.mark.parametrize("decoder", sorted(DECODERS))
@pytest.mark.parametrize("poison", sorted(POISON))
def test_cloudevent_and_trigger_decoders_raise_bad_message(decoder: str, poison: str) -> None:
    body, reason = POISON[poison]
    with pytest.raises(BadMessage) as caught:
        DECODERS[decoder](body)
    assert reason in str(caught.value)
    decoded = DECODERS[decoder](b'{"a": [1, 2.5, "\\u00e9"]}')  # while good JSON passes
    assert getattr(decoded, "data", decoded) == {"a": [1, 2.5, "é"]}


@pytest.mark.parametrize("poison", sorted(POISON))
def test_the_webhook_and_rest_parser_raises_value_error(poison: str) -> None:
    body, reason = POISON[poison]
    with pytest.raises(ValueError, match=reason):
        parse_json(body)


def record(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> Any:
    return SimpleNamespace(value=value, headers=headers or [], key=b"k", topic="t", partition=0, offset=7)


@pytest.mark.parametrize("poison", sorted(POISON))
def test_a_kafka_trigger_record_that_does_not_decode_is_a_bad_message(poison: str) -> None:
    body, reason = POISON[poison]
    with pytest.raises(BadMessage, match=reason):
        KafkaTriggerSource.message(record(body))
    assert KafkaTriggerSource.message(record(b'{"a": 1}')).data == {"a": 1}


def test_whatever_a_kafka_decoder_raises_becomes_a_bad_message() -> None:
    class Weird:
        def __bytes__(self) -> bytes:
            raise RuntimeError("a bug in a decoder")

    with pytest.raises(BadMessage, match="cannot decode the record: RuntimeError"):
        KafkaTriggerSource.message(record(b"{}", [("ce_id", Weird())]))  # type: ignore[list-item]


def test_amqp_properties_that_are_not_attribute_values_are_bad_messages() -> None:
    with pytest.raises(BadMessage, match="cloudEvents_x' is nan"):
        ce.from_amqp(b"{}", {**{f"cloudEvents_{k}": v for k, v in ATTRIBUTES.items()}, "cloudEvents_x": float("nan")}, None)
    with pytest.raises(BadMessage, match="is a dict"):
        ce.from_amqp(b"{}", {**{f"cloudEvents_{k}": v for k, v in ATTRIBUTES.items()}, "cloudEvents_x": {}}, None)


def test_encoders_refuse_to_emit_what_is_not_strict_json() -> None:
    for encode in (ce.to_http_binary, ce.to_kafka_binary, ce.to_amqp, ce.structured):
        with pytest.raises(BadMessage, match="inf is not a JSON number"):
            encode(ATTRIBUTES, {"x": float("inf")})


@pytest.mark.parametrize("poison", sorted(POISON))
def test_a_poison_command_or_task_record_is_a_codec_error(poison: str) -> None:
    body, reason = POISON[poison]
    good = encode_command(CompleteStep(execution_id="e", now=1.0, step="s", attempt_id="a", output=1))
    poisoned = good.replace(b'"output":1', b'"output":' + body)
    assert poisoned != good
    for decode in (decode_command, decode_task):
        with pytest.raises(CodecError, match=reason):
            decode(poisoned)
    assert decode_command(good).execution_id == "e"


def test_the_kafka_codec_refuses_to_encode_a_non_finite_value() -> None:
    with pytest.raises(CodecError, match="cannot be encoded as JSON"):
        encode_command(CompleteStep(execution_id="e", now=1.0, step="s", attempt_id="a", output=float("nan")))


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("wf.json", '{"name": "x", "steps": [{"name": "w", "type": "wait", "seconds": 1e400}]}', "too large"),
        ("wf.yaml", "name: x\nsteps:\n- {name: w, type: wait, seconds: .inf}\n", "inf is not a JSON number"),
        ("wf.yml", "name: x\ninput_schema: {default: .nan}\nsteps: []\n", "nan is not a JSON number"),
        ("wf.yaml", "name: x\ndescription: 2024-01-01\nsteps: []\n", "(date) is not a JSON value"),
    ],
)
def test_definition_files_must_hold_strict_json_values(tmp_path: Path, name: str, text: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load_data(path)
    assert reason in caught.value.problems[0].message
    path.write_bytes(b"name: \xff\n")
    with pytest.raises(DefinitionError, match="not UTF-8"):
        load_data(path)


@pytest.mark.parametrize("text", ["NaN", "[1e400]", '{"a": Infinity}', "1" * 5000])
def test_cli_input_must_be_strict_json(tmp_path: Path, text: str) -> None:
    with pytest.raises(CliError, match="is not valid JSON") as caught:
        parse_json_arg(text, "input")
    assert caught.value.code == 2
    (tmp_path / "in.json").write_text(text)
    with pytest.raises(CliError, match="is not valid JSON"):
        parse_json_arg(f"@{tmp_path / 'in.json'}", "input")
    assert parse_json_arg('{"a": 1.5}', "input") == {"a": 1.5}


# -- trigger routing ------------------------------------------------------------------------------

MIXED = [{"k": 1}, {"k": "x"}]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"filter": "max_by(data, &k)"}, "cannot compare these values"),
        ({"input": "data[::0]"}, "slice step cannot be zero"),
        ({"input": "to_number('1e400')"}, "inf is not a JSON number"),
        ({"message_id": "sort_by(data, &k)"}, "sort_by()"),
        ({"correlation": {"event": "go", "key": "min_by(data, &k)"}}, "cannot compare these values"),
        ({"correlation": {"event": "go", "key": "'k'", "payload": "sum(data[].k)"}}, "sum()"),
    ],
)
async def test_an_expression_failing_on_a_message_makes_a_dead_letter(fields: dict[str, Any], reason: str) -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        await runtime.register(Workflow("wf").task("a", "noop").build())
        trigger = KafkaTrigger(name="t", topics=["orders"], **fields)
        router = Router(runtime, "wf", trigger)
        outcome = await router.accept(InboundMessage(data=MIXED, identity="kafka:orders/0/1"))
        assert outcome.kind == "dead" and reason in outcome.reason
        plain = Router(runtime, "wf", KafkaTrigger(name="t", topics=["orders"]))
        assert (await plain.accept(InboundMessage(data=MIXED, identity="kafka:orders/0/1"))).kind == "started"


@pytest.mark.parametrize(
    "argv",
    [
        ["start", "wf", "--wait", "--timeout", "inf"],
        ["start", "wf", "--wait", "--timeout", "nan"],
        ["redrive-bulk", "--workflow", "wf", "--rate", "nan"],
        ["redrive", "x", "--wait", "--timeout", "-1"],
    ],
)
def test_cli_seconds_and_rates_must_be_finite(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    assert "is not a finite number >= 0" in capsys.readouterr().err
    assert finite_number("2.5") == 2.5
