"""CloudEvents 1.0 bindings: HTTP, Kafka and AMQP, binary and structured mode, and every error."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import cloudevents as ce
from triggers.inbound import BadMessage

ATTRS = {"id": "evt-1", "source": "/shop/orders", "type": "com.example.order.created"}
DATA = {"order": 42, "items": ["a", "b"], "note": "héllo"}
STRUCTURED = {"content-type": "application/cloudevents+json"}


def event(**extra: Any) -> bytes:
    return json.dumps({"specversion": "1.0", **ATTRS, **extra}).encode()


# -- HTTP -----------------------------------------------------------------------------------------


def test_http_binary_mode_reads_headers_and_json_body() -> None:
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "CE-ID": "evt-1",  # header names are case-insensitive
        "ce-source": "/shop/orders",
        "ce-type": "com.example.order.created",
        "ce-subject": "order%2042",  # percent-encoded per the HTTP binding
        "ce-correlationkey": "k-1",
        "X-Other": "ignored",
    }
    decoded = ce.from_http(json.dumps(DATA).encode(), headers)
    assert decoded.mode == "binary"
    assert decoded.data == DATA
    assert decoded.attributes == {
        "specversion": "1.0",
        **ATTRS,
        "subject": "order 42",
        "correlationkey": "k-1",
        "datacontenttype": "application/json",
    }


def test_http_structured_mode_with_inline_data() -> None:
    decoded = ce.from_http(
        event(data=DATA, subject="s"), {"Content-Type": "application/cloudevents+json; charset=utf-8"}
    )
    assert decoded.mode == "structured"
    assert decoded.data == DATA
    assert decoded.attributes == {"specversion": "1.0", **ATTRS, "subject": "s"}


def test_structured_mode_data_base64_is_read_per_datacontenttype() -> None:
    as_json = base64.b64encode(json.dumps(DATA).encode()).decode()
    decoded = ce.from_http(event(data_base64=as_json, datacontenttype="application/json"), STRUCTURED)
    assert decoded.data == DATA
    opaque = base64.b64encode(b"\x00\xffbin").decode()
    decoded = ce.from_http(event(data_base64=opaque, datacontenttype="image/png"), STRUCTURED)
    assert decoded.data == opaque  # opaque bytes stay base64 text so data is always JSON
    assert "data_base64" not in (decoded.attributes or {})


def test_structured_event_without_data_has_none() -> None:
    assert ce.from_http(event(), STRUCTURED).data is None


def test_binary_mode_text_and_opaque_and_empty_bodies() -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
    text = ce.from_http("héllo".encode("latin-1"), {**headers, "content-type": "text/plain; charset=latin-1"})
    assert text.data == "héllo"
    opaque = ce.from_http(b"\x00\x01", {**headers, "content-type": "application/octet-stream"})
    assert opaque.data == "AAE="
    assert ce.from_http(b"", headers).data is None
    # no content type: the data is taken to be JSON
    assert ce.from_http(b"[1,2]", headers).data == [1, 2]
    assert ce.from_http(b"[1]", {**headers, "content-type": "application/vnd.x+json"}).data == [1]


def test_http_plain_json_is_not_a_cloudevent() -> None:
    decoded = ce.from_http(b'{"a": 1}', {"Content-Type": "application/json"})
    assert decoded == ce.Decoded({"a": 1}, None, None)
    assert not decoded.is_cloudevent


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (
            b"{}",
            {"ce-id": "1", "ce-source": "/s", "ce-type": "t"},
            "missing required attribute(s) 'specversion'",
        ),
        (
            b"{}",
            {"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"},
            "missing required attribute(s) 'id'",
        ),
        (b"{}", {"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, "'source'"),
        (b"{}", {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": ""}, "'type'"),
        (
            b"{}",
            {"ce-specversion": "0.3", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
            "specversion '0.3'",
        ),
        (
            b"{",
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"},
            "data is not JSON",
        ),
        (
            b"{}",
            {
                "ce-specversion": "1.0",
                "ce-id": "1",
                "ce-source": "/s",
                "ce-type": "t",
                "ce-time": "yesterday",
            },
            "'time' is not an RFC 3339",
        ),
        (
            b"{}",
            {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "ce-my-ext": "x"},
            "invalid CloudEvent attribute name 'my-ext'",
        ),
        (b"{", {"content-type": "application/json"}, "the body is not JSON"),
        (b"[]", {"content-type": "application/cloudevents-batch+json"}, "batched CloudEvents"),
        (b"x", {"content-type": "application/cloudevents+avro"}, "unsupported CloudEvents event format"),
        (b"{", STRUCTURED, "structured CloudEvent is not JSON"),
        (b"[1]", STRUCTURED, "not a JSON object"),
        (json.dumps({"specversion": "1.0", "id": "1", "source": "/s"}).encode(), STRUCTURED, "'type'"),
        (json.dumps({"specversion": "1.0", **ATTRS, "id": 7}).encode(), STRUCTURED, "'id' must be a string"),
        (event(data=1, data_base64="AA=="), STRUCTURED, "both 'data' and 'data_base64'"),
        (event(data_base64="***"), STRUCTURED, "not valid base64"),
        (event(Bad=1), STRUCTURED, "invalid CloudEvent attribute name 'Bad'"),
    ],
)
def test_http_errors_name_the_problem(body: bytes, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(BadMessage) as caught:
        ce.from_http(body, headers)
    assert reason in str(caught.value)


def test_http_binary_round_trip_percent_encodes_header_values() -> None:
    attrs = {**ATTRS, "subject": 'a "quoted" 100% ü', "time": datetime(2024, 5, 1, 12, tzinfo=UTC)}
    body, headers = ce.to_http_binary(attrs, DATA)
    assert headers["ce-subject"] == "a%20%22quoted%22%20100%25%20%C3%BC"
    assert headers["ce-time"] == "2024-05-01T12:00:00Z"
    assert all(value.isascii() for value in headers.values())
    decoded = ce.from_http(body, headers)
    assert decoded.data == DATA
    assert decoded.attributes is not None
    assert decoded.attributes["subject"] == 'a "quoted" 100% ü'


# -- Kafka ----------------------------------------------------------------------------------------


def test_kafka_binary_mode() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"evt-1"),
        ("ce_source", b"/shop/orders"),
        ("ce_type", b"com.example.order.created"),
        ("ce_subject", "ünï".encode()),
        ("content-type", b"application/json"),
        ("traceparent", b"00-abc"),
    ]
    decoded = ce.from_kafka(json.dumps(DATA).encode(), headers)
    assert decoded.mode == "binary"
    assert decoded.data == DATA
    assert decoded.attributes == {
        "specversion": "1.0",
        **ATTRS,
        "subject": "ünï",
        "datacontenttype": "application/json",
    }


def test_kafka_structured_mode_by_content_type_header() -> None:
    decoded = ce.from_kafka(event(data=DATA), [("content-type", b"application/cloudevents+json")])
    assert decoded.mode == "structured"
    assert decoded.data == DATA
    assert decoded.attributes == {"specversion": "1.0", **ATTRS}


def test_kafka_without_headers_is_plain_json_even_if_it_looks_like_an_event() -> None:
    decoded = ce.from_kafka(event(data=DATA), [])
    assert decoded.attributes is None
    assert decoded.data["data"] == DATA


def test_kafka_binary_event_with_no_value_has_no_data() -> None:
    _, headers = ce.to_kafka_binary(ATTRS, None)
    assert ce.from_kafka(None, headers).data is None


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"t")], "'source'"),
        (
            b"{}",
            [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"\xff"), ("ce_type", b"t")],
            "not UTF-8",
        ),
        (
            b"{",
            [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"/s"), ("ce_type", b"t")],
            "not JSON",
        ),
        (b"nope", [], "the body is not JSON"),
        (None, [], "the body is not JSON"),
        (b"[]", [("content-type", b"application/cloudevents-batch+json")], "batched"),
        (b"{}", [("content-type", b"application/cloudevents+json")], "missing required attribute(s)"),
    ],
)
def test_kafka_errors(value: bytes | None, headers: list[tuple[str, bytes]], reason: str) -> None:
    with pytest.raises(BadMessage) as caught:
        ce.from_kafka(value, headers)
    assert reason in str(caught.value)


def test_kafka_binary_round_trip_keeps_every_attribute_as_canonical_text() -> None:
    attrs = {**ATTRS, "subject": "x-1", "sequence": 7, "flag": True, "time": "2024-05-01T12:00:00.5+02:00"}
    value, headers = ce.to_kafka_binary(attrs, DATA)
    assert dict(headers)["ce_sequence"] == b"7"
    assert dict(headers)["ce_flag"] == b"true"
    assert dict(headers)["ce_specversion"] == b"1.0"
    assert dict(headers)["content-type"] == b"application/json"
    decoded = ce.from_kafka(value, headers)
    assert decoded.data == DATA
    assert decoded.attributes == {
        "specversion": "1.0",
        **ATTRS,
        "subject": "x-1",
        "sequence": "7",
        "flag": "true",
        "time": "2024-05-01T12:00:00.5+02:00",
        "datacontenttype": "application/json",
    }


def test_kafka_binary_bytes_data_round_trip() -> None:
    value, headers = ce.to_kafka_binary(ATTRS, b"\x00\x01\x02")
    assert value == b"\x00\x01\x02"
    assert dict(headers)["content-type"] == b"application/octet-stream"
    assert ce.from_kafka(value, headers).data == base64.b64encode(b"\x00\x01\x02").decode()


# -- AMQP -----------------------------------------------------------------------------------------


def test_amqp_binary_mode_with_current_and_legacy_prefixes() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    headers = {
        "cloudEvents_specversion": "1.0",
        "cloudEvents_id": b"evt-1",
        "cloudEvents:source": "/shop/orders",  # the older prefix
        "cloudEvents_type": "com.example.order.created",
        "cloudEvents_time": when,
        "cloudEvents_priority": 5,
        "x-death": "ignored",
    }
    decoded = ce.from_amqp(json.dumps(DATA).encode(), headers, "application/json")
    assert decoded.mode == "binary"
    assert decoded.data == DATA
    assert decoded.attributes == {
        "specversion": "1.0",
        **ATTRS,
        "time": "2024-05-01T12:00:00Z",
        "priority": 5,
        "datacontenttype": "application/json",
    }


def test_amqp_structured_mode_by_content_type() -> None:
    decoded = ce.from_amqp(event(data=DATA), {}, "application/cloudevents+json")
    assert decoded.mode == "structured"
    assert decoded.data == DATA


def test_amqp_plain_json() -> None:
    assert ce.from_amqp(b'{"a":1}', {"x": 1}, None) == ce.Decoded({"a": 1})


@pytest.mark.parametrize(
    ("body", "headers", "content_type", "reason"),
    [
        (
            b"{}",
            {"cloudEvents_id": "1", "cloudEvents_source": "/s", "cloudEvents_type": "t"},
            None,
            "'specversion'",
        ),
        (
            b"{}",
            {
                "cloudEvents:specversion": "2.0",
                "cloudEvents:id": "1",
                "cloudEvents:source": "/s",
                "cloudEvents:type": "t",
            },
            None,
            "'2.0'",
        ),
        (
            b"{}",
            {
                "cloudEvents_specversion": "1.0",
                "cloudEvents_id": "1",
                "cloudEvents_source": "/s",
                "cloudEvents_type": "t",
                "cloudEvents_data": "x",
            },
            None,
            "cannot be sent as a header",
        ),
        (b"<x/>", {}, "application/xml", "the body is not JSON"),
        (b"{}", {}, "application/cloudevents+json", "missing required"),
        (b"[]", {}, "application/cloudevents-batch+json", "batched"),
    ],
)
def test_amqp_errors(body: bytes, headers: dict[str, Any], content_type: str | None, reason: str) -> None:
    with pytest.raises(BadMessage) as caught:
        ce.from_amqp(body, headers, content_type)
    assert reason in str(caught.value)


def test_amqp_round_trip() -> None:
    attrs = {**ATTRS, "sequence": 3, "time": datetime(2024, 1, 2, tzinfo=UTC), "subject": "s"}
    body, headers, content_type = ce.to_amqp(attrs, DATA)
    assert content_type == "application/json"
    assert headers["cloudEvents_sequence"] == 3
    assert headers["cloudEvents_time"] == "2024-01-02T00:00:00Z"
    decoded = ce.from_amqp(body, headers, content_type)
    assert decoded.data == DATA
    assert decoded.attributes == {
        "specversion": "1.0",
        **ATTRS,
        "sequence": 3,
        "time": "2024-01-02T00:00:00Z",
        "subject": "s",
        "datacontenttype": "application/json",
    }


def test_amqp_text_round_trip() -> None:
    body, headers, content_type = ce.to_amqp({**ATTRS, "datacontenttype": "text/plain"}, "hi there")
    assert (body, content_type) == (b"hi there", "text/plain")
    assert ce.from_amqp(body, headers, content_type).data == "hi there"


# -- structured encoding --------------------------------------------------------------------------


def test_structured_round_trip_over_each_transport() -> None:
    raw = ce.structured({**ATTRS, "subject": "s", "sequence": 4}, DATA)
    parsed = json.loads(raw)
    assert parsed == {
        "specversion": "1.0",
        **ATTRS,
        "subject": "s",
        "sequence": 4,
        "datacontenttype": "application/json",
        "data": DATA,
    }
    expected = {
        "specversion": "1.0",
        **ATTRS,
        "subject": "s",
        "sequence": 4,
        "datacontenttype": "application/json",
    }
    for decoded in (
        ce.from_http(raw, STRUCTURED),
        ce.from_kafka(raw, [("content-type", b"application/cloudevents+json")]),
        ce.from_amqp(raw, {}, "application/cloudevents+json"),
    ):
        assert (decoded.mode, decoded.data, decoded.attributes) == ("structured", DATA, expected)


def test_structured_bytes_become_data_base64() -> None:
    raw = ce.structured(ATTRS, b"\x00\x01")
    parsed = json.loads(raw)
    assert parsed["data_base64"] == "AAE=" and "data" not in parsed
    assert parsed["datacontenttype"] == "application/octet-stream"
    json_bytes = ce.structured({**ATTRS, "datacontenttype": "application/json"}, b'{"a":1}')
    assert ce.from_http(json_bytes, STRUCTURED).data == {"a": 1}


def test_identity_is_source_and_id() -> None:
    assert ce.identity(ATTRS) == "/shop/orders/evt-1"


@pytest.mark.parametrize(
    ("attributes", "data", "reason"),
    [
        ({"id": "1", "source": "/s"}, {}, "'type'"),
        ({**ATTRS, "specversion": "0.3"}, {}, "'0.3'"),
        ({**ATTRS, "data": 1}, {}, "not an attribute"),
        ({**ATTRS, "Bad-Name": 1}, {}, "invalid CloudEvent attribute name"),
        ({**ATTRS, "datacontenttype": "text/plain"}, {"a": 1}, "must be bytes or a string"),
    ],
)
def test_encoding_errors(attributes: dict[str, Any], data: Any, reason: str) -> None:
    for encode in (ce.to_http_binary, ce.to_kafka_binary, ce.to_amqp, ce.structured):
        with pytest.raises(BadMessage) as caught:
            encode(attributes, data)
        assert reason in str(caught.value)
