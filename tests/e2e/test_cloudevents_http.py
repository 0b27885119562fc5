"""CloudEvents over HTTP: webhooks and ``POST /api/v1/events`` in binary and structured mode."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.ports import ExecutionQuery
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import cloudevents
from schemas.validation import parse_definition

Client = TestClient[web.Request, web.Application]
ORDER = {"order_id": "o-1", "amount": 5}
CE = {"id": "evt-1", "source": "/shop", "type": "com.example.order.created", "subject": "o-1"}
STRUCTURED = {"Content-Type": "application/cloudevents+json"}
ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "integer"}},
}
DEFINITIONS = [
    {
        "name": "orders",
        "input_schema": ORDER_SCHEMA,
        "triggers": [
            {"type": "webhook", "name": "orders"},
            {"type": "webhook", "name": "orders-by-field", "idempotency_field": "order_id"},
            {"type": "webhook", "name": "orders-by-header", "idempotency_header": "X-Delivery"},
        ],
        "steps": [{"name": "done", "type": "succeed"}],
    },
    {
        # waits twice for the same event name and key: shows a re-sent CloudEvent is taken once
        "name": "approvals",
        "steps": [
            {
                "name": "first",
                "type": "wait_for_event",
                "event": "com.example.approved",
                "correlation_key": "input.key",
                "next": "second",
            },
            {
                "name": "second",
                "type": "wait_for_event",
                "event": "com.example.approved",
                "correlation_key": "input.key",
                "next": "done",
            },
            {"name": "done", "type": "succeed", "output": "[steps.first, steps.second]"},
        ],
    },
]


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(auth=False, event_log_url="memory://")) as runtime:
        for definition in DEFINITIONS:
            await runtime.register(parse_definition(definition))
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def answer(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text)


async def error(response: Any, status: int, code: str) -> str:
    body = await answer(response, status)
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    return message


async def executions(runtime: Runtime, workflow: str) -> list[str]:
    page = await runtime.list_executions(ExecutionQuery(workflow=workflow))
    return [item.execution_id for item in page.items]


def binary(attributes: dict[str, Any], data: Any) -> dict[str, Any]:
    body, headers = cloudevents.to_http_binary(attributes, data)
    return {"data": body, "headers": headers}


def structured(attributes: dict[str, Any], data: Any) -> dict[str, Any]:
    return {"data": cloudevents.structured(attributes, data), "headers": STRUCTURED}


MODES = pytest.mark.parametrize("encode", [binary, structured], ids=["binary", "structured"])


# -- webhooks -----------------------------------------------------------------------------------


@MODES
async def test_webhook_starts_with_the_cloudevent_data(client: Client, runtime: Runtime, encode: Any) -> None:
    started = await answer(await client.post("/hooks/orders", **encode(CE, ORDER)), 202)
    events = await runtime.log.read(started["execution_id"])
    assert events[0].type == "ExecutionStarted"
    assert events[0].data["input"] == ORDER  # the data, not the envelope
    assert events[0].data["metadata"]["delivery"] == "ce:/shop/evt-1"


@MODES
async def test_webhook_dedups_by_source_and_id(client: Client, runtime: Runtime, encode: Any) -> None:
    first = await answer(await client.post("/hooks/orders", **encode(CE, ORDER)), 202)
    # the same event again, even in the other mode and with other data: the same execution
    other = structured if encode is binary else binary
    again = await answer(await client.post("/hooks/orders", **other(CE, {**ORDER, "amount": 9})), 200)
    assert again == {"execution_id": first["execution_id"], "created": False}
    # same id from another source is another event
    elsewhere = await answer(await client.post("/hooks/orders", **encode({**CE, "source": "/b"}, ORDER)), 202)
    assert elsewhere["execution_id"] != first["execution_id"]
    assert len(await executions(runtime, "orders")) == 2


async def test_webhook_configured_idempotency_wins_over_the_cloudevent_id(client: Client) -> None:
    by_field = [
        await client.post("/hooks/orders-by-field", **binary({**CE, "id": str(n)}, ORDER)) for n in range(2)
    ]
    assert [r.status for r in by_field] == [202, 200]  # same order_id, different CloudEvent ids
    assert len({(await r.json())["execution_id"] for r in by_field}) == 1
    first = binary(CE, ORDER)
    first["headers"]["X-Delivery"] = "d-1"
    second = structured(CE, ORDER)  # same CloudEvent id, another delivery id
    second["headers"] = {**second["headers"], "X-Delivery": "d-2"}
    a = await answer(await client.post("/hooks/orders-by-header", **first), 202)
    b = await answer(await client.post("/hooks/orders-by-header", **second), 202)
    assert a["execution_id"] != b["execution_id"]


async def test_webhook_plain_json_still_works(client: Client) -> None:
    first = await answer(await client.post("/hooks/orders", json=ORDER), 202)
    second = await answer(await client.post("/hooks/orders", json=ORDER), 202)  # no key: two starts
    assert first["execution_id"] != second["execution_id"]


async def test_webhook_binary_mode_without_content_type_reads_json(client: Client) -> None:
    _, headers = cloudevents.to_http_binary(CE, ORDER)
    del headers["content-type"]
    response = await client.post(
        "/hooks/orders",
        data=json.dumps(ORDER).encode(),
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )
    assert response.status == 202, await response.text()
    # opaque bytes are data too (as base64 text), which this workflow's input schema rejects
    response = await client.post(
        "/hooks/orders",
        data=json.dumps(ORDER).encode(),
        headers={**headers, "content-type": "application/octet-stream"},
    )
    message = await error(response, 400, "invalid_input")
    assert message == "the input does not match the input schema"


@pytest.mark.parametrize(
    ("request_kwargs", "code", "reason"),
    [
        (
            {
                "data": b"{}",
                "headers": {
                    "content-type": "application/json",
                    "ce-specversion": "1.0",
                    "ce-id": "1",
                    "ce-type": "t",
                },
            },
            "invalid_cloudevent",
            "missing required attribute(s) 'source'",
        ),
        (
            {
                "data": json.dumps({"specversion": "1.0", "id": "1", "source": "/s"}).encode(),
                "headers": STRUCTURED,
            },
            "invalid_cloudevent",
            "missing required attribute(s) 'type'",
        ),
        (
            {"data": json.dumps({**CE, "specversion": "0.3"}).encode(), "headers": STRUCTURED},
            "invalid_cloudevent",
            "specversion '0.3'",
        ),
        (
            {"data": b"[]", "headers": {"Content-Type": "application/cloudevents-batch+json"}},
            "invalid_cloudevent",
            "batched CloudEvents",
        ),
        (
            {"data": b"{nope", "headers": STRUCTURED},
            "invalid_json",
            "not valid JSON",
        ),
        (
            {"data": b"{nope", "headers": binary(CE, ORDER)["headers"]},
            "invalid_json",
            "not valid JSON",
        ),
    ],
)
async def test_webhook_invalid_cloudevents_are_400(
    client: Client, runtime: Runtime, request_kwargs: dict[str, Any], code: str, reason: str
) -> None:
    message = await error(await client.post("/hooks/orders", **request_kwargs), 400, code)
    assert reason in message
    assert await executions(runtime, "orders") == []


async def test_webhook_cloudevent_data_is_validated_against_the_input_schema(client: Client) -> None:
    await error(await client.post("/hooks/orders", **structured(CE, {"order_id": 1})), 400, "invalid_input")


# -- POST /api/v1/events --------------------------------------------------------------------------


async def start_approval(runtime: Runtime, key: str) -> str:
    result = await runtime.start_execution("approvals", {"key": key})
    return result.execution_id


@MODES
async def test_event_api_delivers_a_cloudevent_once(client: Client, runtime: Runtime, encode: Any) -> None:
    waiting = await start_approval(runtime, "k-1")
    other = await start_approval(runtime, "k-2")
    approved = {"id": "a-1", "source": "/reviews", "type": "com.example.approved", "correlationkey": "k-1"}
    delivered = await answer(await client.post("/api/v1/events", **encode(approved, {"by": "ana"})), 202)
    assert delivered == {"delivered_to": [waiting]}
    # re-sent (in either mode): the execution waits again for the same name and key, yet takes it once
    for send in (binary, structured):
        again = await answer(await client.post("/api/v1/events", **send(approved, {"by": "ana"})), 202)
        assert again == {"delivered_to": []}
    assert (await runtime.state(waiting)).status == "running"
    second = {**approved, "id": "a-2"}
    delivered = await answer(await client.post("/api/v1/events", **encode(second, {"by": "bo"})), 202)
    assert delivered == {"delivered_to": [waiting]}
    assert (await runtime.wait(waiting, timeout=5)).output == [{"by": "ana"}, {"by": "bo"}]
    assert (await runtime.state(other)).status == "running"


async def test_event_api_correlates_by_subject_without_correlationkey(
    client: Client, runtime: Runtime
) -> None:
    waiting = await start_approval(runtime, "k-9")
    approved = {"id": "s-1", "source": "/reviews", "type": "com.example.approved", "subject": "k-9"}
    delivered = await answer(await client.post("/api/v1/events", **structured(approved, None)), 202)
    assert delivered == {"delivered_to": [waiting]}
    # correlationkey wins over subject
    both = {**approved, "id": "s-2", "subject": "k-9", "correlationkey": "nobody"}
    assert await answer(await client.post("/api/v1/events", **binary(both, 1)), 202) == {"delivered_to": []}


async def test_event_api_plain_json_still_works(client: Client, runtime: Runtime) -> None:
    waiting = await start_approval(runtime, "k-3")
    event = {"name": "com.example.approved", "correlation_key": "k-3", "payload": 1}
    assert await answer(await client.post("/api/v1/events", json=event), 202) == {"delivered_to": [waiting]}
    # without an event id, a repeated plain event is delivered again
    assert await answer(await client.post("/api/v1/events", json=event), 202) == {"delivered_to": [waiting]}


@pytest.mark.parametrize(
    ("request_kwargs", "code", "reason"),
    [
        (
            {"data": b"{}", "headers": {"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}},
            "invalid_cloudevent",
            "missing required attribute(s) 'id'",
        ),
        (
            {"data": json.dumps({"id": "1", "source": "/s", "type": "t"}).encode(), "headers": STRUCTURED},
            "invalid_cloudevent",
            "missing required attribute(s) 'specversion'",
        ),
        (
            {"data": b"[]", "headers": {"Content-Type": "application/cloudevents-batch+json"}},
            "invalid_cloudevent",
            "batched",
        ),
        (
            {"data": b"x", "headers": {"Content-Type": "application/cloudevents+avro"}},
            "invalid_cloudevent",
            "unsupported CloudEvents event format",
        ),
        ({"data": b"{", "headers": STRUCTURED}, "invalid_body", "not JSON"),
    ],
)
async def test_event_api_invalid_cloudevents_are_400(
    client: Client, request_kwargs: dict[str, Any], code: str, reason: str
) -> None:
    message = await error(await client.post("/api/v1/events", **request_kwargs), 400, code)
    assert reason in message


async def test_openapi_documents_the_cloudevent_body(client: Client) -> None:
    document = await answer(await client.get("/api/v1/openapi.json"), 200)
    publish = document["paths"]["/api/v1/events"]["post"]
    assert "CloudEvent" in publish["summary"]
    assert set(publish["requestBody"]["content"]) == {"application/json", "application/cloudevents+json"}
    inbound = document["components"]["schemas"]["InboundCloudEvent"]
    assert inbound["required"] == ["specversion", "id", "source", "type"]
