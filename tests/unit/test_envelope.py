"""The event envelope: CloudEvents attributes, bytes round trip, base64 data, versions, garbage."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import SCHEMA_VERSION, TYPE_PREFIX, Envelope, EnvelopeError, chained


def envelope(**fields: Any) -> Envelope:
    values: dict[str, Any] = {
        "id": "0001",
        "type": "StepScheduled",
        "subject": "ex-1",
        "sequence": 2,
        "time": "2026-01-01T00:00:00.500000Z",
        "workflow": "order",
        "workflowversion": 3,
        "data": {"step": "a", "args": {"n": 1}},
    }
    return Envelope(**{**values, **fields})


def cloudevent(**fields: Any) -> dict[str, Any]:
    return {**envelope().to_cloudevent(), **fields}


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def test_cloudevents_required_and_extension_attributes_are_present() -> None:
    event = envelope(actor="ann", causationid="cmd-1", tenant="acme").to_cloudevent()
    assert event == {
        "specversion": "1.0",
        "id": "0001",
        "source": "/orchestrator",
        "type": "io.orchestrator.StepScheduled",
        "subject": "ex-1",
        "time": "2026-01-01T00:00:00.500000Z",
        "datacontenttype": "application/json",
        "sequence": 2,
        "workflow": "order",
        "workflowversion": 3,
        "tenant": "acme",
        "schemaversion": SCHEMA_VERSION,
        "codec": "identity",
        "actor": "ann",
        "causationid": "cmd-1",
        "data": {"step": "a", "args": {"n": 1}},
    }
    # CloudEvents attribute names: lower-case letters and digits only
    assert all(re.fullmatch(r"[a-z0-9]+", name) for name in event)


def test_optional_attributes_are_left_out_when_unset() -> None:
    event = envelope().to_cloudevent()
    assert "actor" not in event and "causationid" not in event
    assert event["tenant"] == "default"


@pytest.mark.parametrize(
    "value",
    [
        envelope(),
        envelope(actor="ann", causationid="c-9", tenant="t", source="/elsewhere"),
        envelope(
            data={"text": "naïve ☃ 日本", "list": [1, 2.5, None, True], "nested": {"a": {"b": []}}}
        ),
        envelope(type="ExecutionSucceeded", data={"output": None}),
    ],
)
def test_to_bytes_and_from_bytes_round_trip(value: Envelope) -> None:
    encoded = value.to_bytes()
    assert isinstance(encoded, bytes)
    assert Envelope.from_bytes(encoded) == value
    assert Envelope.from_bytes(encoded).to_bytes() == encoded  # stable bytes
    canonical = json.dumps(value.to_cloudevent(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert encoded == canonical.encode("utf-8")  # canonical: compact UTF-8 JSON, keys sorted


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"actor": "ann", "causationid": "c-9"},
        {"actor": 'x","codec":"y\\', "causationid": '"codec":'},  # the key's text inside values
        {"data": {"z": 1, "a": [{"y": "☃", "b": None}], "codec": "in data"}},
    ],
)
def test_sealed_equals_chaining_then_encoding(fields: dict[str, Any]) -> None:
    previous = "ab" * 32
    sealed = Envelope.sealed(previous, **{**_values(), **fields})
    chained_one = chained(previous, envelope(**fields))
    assert sealed == chained_one and sealed.chainhash == chained_one.chainhash
    assert sealed.to_bytes() == chained_one.to_bytes()  # the spliced hash sits where sorting puts it
    assert Envelope.from_bytes(sealed.to_bytes()) == sealed


def test_a_replaced_envelope_is_encoded_afresh() -> None:
    sealed = Envelope.sealed("", **_values())
    moved = dataclasses.replace(sealed, sequence=99)
    assert json.loads(moved.to_bytes())["sequence"] == 99
    assert json.loads(sealed.to_bytes())["sequence"] == 2


def _values() -> dict[str, Any]:
    one = envelope()
    return {f.name: getattr(one, f.name) for f in dataclasses.fields(one) if f.init}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.integers()  # beyond 64 bits too: the standard parser takes those
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, database=None)
@given(json_values, st.integers(1, 10**9), st.text(min_size=1, max_size=30))
def test_any_json_payload_round_trips(data: Any, sequence: int, subject: str) -> None:
    value = envelope(data=data, sequence=sequence, subject=subject)
    assert Envelope.from_bytes(value.to_bytes()) == value


def test_the_type_prefix_is_added_and_removed() -> None:
    event = envelope(type="TimerFired").to_cloudevent()
    assert event["type"] == TYPE_PREFIX + "TimerFired"
    assert Envelope.from_cloudevent(event).type == "TimerFired"


def test_data_base64_is_decoded_with_the_identity_codec() -> None:
    event = cloudevent()
    payload = event.pop("data")
    event["data_base64"] = base64.b64encode(json.dumps(payload).encode()).decode()
    assert Envelope.from_bytes(raw(event)) == envelope()


def test_data_base64_with_an_unknown_codec_is_refused() -> None:
    event = cloudevent(codec="aesgcm:k1")
    event.pop("data")
    event["data_base64"] = base64.b64encode(b"\x00secret").decode()
    with pytest.raises(EnvelopeError, match="codec 'aesgcm:k1' is not available"):
        Envelope.from_bytes(raw(event))


def test_an_envelope_without_schemaversion_is_version_one() -> None:
    event = cloudevent()
    del event["schemaversion"]
    assert Envelope.from_bytes(raw(event)).schemaversion == 1


def test_a_schemaversion_newer_than_the_code_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="newer than this code"):
        Envelope.from_bytes(raw(cloudevent(schemaversion=SCHEMA_VERSION + 1)))


def _without(name: str) -> bytes:
    event = cloudevent()
    del event[name]
    return raw(event)


def _with_base64(text: str) -> bytes:
    event = cloudevent()
    del event["data"]
    event["data_base64"] = text
    return raw(event)


GARBAGE = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"\x80\x81\x82",
    b"[1, 2]",
    b"null",
    b"42",
    b'"a string"',
    b"{}",
    b'{"id": "x"}',
    *[
        _without(name)
        for name in ("id", "type", "subject", "sequence", "time", "workflow", "workflowversion")
    ],
    _without("data"),  # neither data nor data_base64
    raw(cloudevent(sequence="two")),
    raw(cloudevent(workflowversion=[1])),
    raw(cloudevent(schemaversion="new")),
    raw(cloudevent(schemaversion=None)),
    _with_base64("!!! not base64"),
    _with_base64(base64.b64encode(b"\xff not json").decode()),
    _with_base64(base64.b64encode(b"{unfinished").decode()),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_bytes_raise_envelope_error(garbage: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(garbage)


@pytest.mark.parametrize("value", [5, None, ["StepScheduled"]])
def test_a_non_string_type_raises_envelope_error(value: Any) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(raw(cloudevent(type=value)))


@pytest.mark.parametrize(
    "number", [2**63 - 1, 2**64, -(2**63) - 1, 10**30, 1234567890123456789, 10**4000, 0.1234567890123456789]
)
def test_numbers_of_many_digits_round_trip_exactly(number: int | float) -> None:
    value = envelope(data={"n": number, "inner": [number, {"m": number}]})
    decoded = Envelope.from_bytes(value.to_bytes())
    assert decoded == value and type(decoded.data["n"]) is type(number)


def test_without_the_long_digits_check_orjson_would_turn_a_long_integer_into_a_float() -> None:
    import orjson

    assert isinstance(orjson.loads(envelope(data={"n": 10**30}).to_bytes())["data"]["n"], float)
