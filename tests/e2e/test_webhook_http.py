"""POST /hooks/{name} over real HTTP against a Runtime on memory:// backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import create_app
from orchestrator.api.requests import MAX_DEPTH
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition
from schemas.validation import parse_definition
from tests.recording_instruments import RecordingInstruments
from triggers.signatures import sign_generic, sign_github, sign_stripe
from triggers.webhook import WebhookEndpoint

NOW = 1_700_000_000.0
SECRETS = {
    "GH_SECRET": "gh-secret-value",
    "STRIPE_SECRET": "whsec_stripe-secret-value",
    "GENERIC_SECRET": "generic-secret-value",
}
JSON = {"Content-Type": "application/json"}
ORDER = {"order_id": "o-1", "amount": 5}
DONE = [{"name": "done", "type": "succeed"}]
Client = TestClient[web.Request, web.Application]


def workflow(
    name: str, *triggers: dict[str, Any], schema: dict[str, Any] | None = None
) -> WorkflowDefinition:
    return parse_definition(
        {
            "name": name,
            "input_schema": schema or {},
            "triggers": [{"type": "webhook", **t} for t in triggers],
            "steps": DONE,
        }
    )


ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount"],
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "integer", "minimum": 1}},
}
DEFINITIONS = [
    workflow(
        "orders",
        {"name": "orders", "idempotency_field": "order_id", "max_body_bytes": 1024},
        {"name": "orders-off", "enabled": False},
        schema=ORDER_SCHEMA,
    ),
    workflow(
        "github",
        {
            "name": "gh",
            "signature": {"preset": "github", "secret": "GH_SECRET"},
            "idempotency_header": "X-GitHub-Delivery",
        },
    ),
    workflow(
        "payments", {"name": "stripe", "signature": {"preset": "stripe", "secret": "STRIPE_SECRET"}}
    ),
    workflow(
        "generic",
        {
            "name": "generic",
            "signature": {"preset": "generic", "secret": "GENERIC_SECRET", "header": "X-Signature"},
        },
    ),
    workflow(
        "unset", {"name": "unset", "signature": {"preset": "github", "secret": "UNSET_SECRET"}}
    ),
]


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(auth=False, event_log_url="memory://", secrets=SECRETS)
    async with Runtime(settings, clock=lambda: NOW) as runtime:
        for definition in DEFINITIONS:
            await runtime.register(definition)
        yield runtime


async def serve(endpoint: WebhookEndpoint) -> Client:
    await endpoint.start()
    app = create_app([endpoint], max_body_bytes=64 * 1024 * 1024)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    endpoint = WebhookEndpoint(runtime, refresh_interval=0, body_timeout=0.5)
    client = await serve(endpoint)
    yield client
    await client.close()
    await endpoint.stop()


async def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a JSON error with the given status and code; return its body."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    assert "Traceback" not in text
    body: dict[str, Any] = json.loads(text)["error"]
    assert body["code"] == code
    return body


async def executions(runtime: Runtime, workflow: str) -> list[str]:
    page = await runtime.list_executions(ExecutionQuery(workflow=workflow))
    return [item.execution_id for item in page.items]


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


# -- success, durability, metadata ----------------------------------------------------------


async def test_accepted_start_is_durable_with_metadata(client: Client, runtime: Runtime) -> None:
    response = await client.post("/hooks/orders", json=ORDER)
    assert response.status == 202
    answer = await response.json()
    execution_id = answer["execution_id"]
    assert answer == {
        "execution_id": execution_id,
        "created": True,
        "status_url": f"/api/v1/executions/{execution_id}",
    }
    assert response.headers["Location"] == answer["status_url"]
    events = await runtime.log.read(execution_id)  # in the log as soon as the 202 arrived
    assert events[0].type == "ExecutionStarted"
    assert events[0].actor == "webhook:orders"
    assert events[0].data["input"] == ORDER
    assert events[0].data["metadata"] == {"trigger": "webhook", "hook": "orders", "delivery": "o-1"}


async def test_json_subtypes_are_accepted(client: Client) -> None:
    # application/cloudevents+json is a CloudEvent (see test_cloudevents_http.py)
    for content_type in (
        "application/vnd.acme+json; charset=utf-8",
        "application/json; charset=utf-8",
    ):
        order = {"order_id": content_type, "amount": 1}
        response = await client.post(
            "/hooks/orders", data=body_of(order), headers={"Content-Type": content_type}
        )
        assert response.status == 202, await response.text()


async def test_list_hooks(client: Client) -> None:
    response = await client.get("/hooks")
    assert response.status == 200
    hooks = {h["name"]: h for h in (await response.json())["hooks"]}
    assert hooks["orders"] == {
        "name": "orders",
        "workflow": "orders",
        "version": 1,
        "signed": False,
        "preset": None,
        "enabled": True,
    }
    assert hooks["orders-off"]["enabled"] is False
    assert hooks["gh"]["signed"] is True and hooks["gh"]["preset"] == "github"
    assert set(hooks) == {"orders", "orders-off", "gh", "stripe", "generic", "unset"}


# -- 404 ----------------------------------------------------------------------------------------


async def test_unknown_hook(client: Client) -> None:
    body = await error(await client.post("/hooks/nope", json=ORDER), 404, "unknown_hook")
    assert "nope" in body["message"]


async def test_disabled_hook(client: Client, runtime: Runtime) -> None:
    await error(await client.post("/hooks/orders-off", json=ORDER), 404, "unknown_hook")
    assert await executions(runtime, "orders") == []


# -- 413 ----------------------------------------------------------------------------------------


async def test_body_over_the_declared_limit(client: Client) -> None:
    order = {"order_id": "x" * 2000, "amount": 1}
    await error(await client.post("/hooks/orders", json=order), 413, "body_too_large")


async def test_chunked_body_without_content_length(client: Client, runtime: Runtime) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"order_id": "'
        for _ in range(16):
            yield b"x" * 256
        yield b'", "amount": 1}'

    response = await client.post("/hooks/orders", data=chunks(), headers=JSON)
    assert "Content-Length" not in response.request_info.headers
    await error(response, 413, "body_too_large")
    assert await executions(runtime, "orders") == []


async def raw_request(client: Client, head: str, body: bytes = b"", timeout: float = 5) -> bytes:
    """Send raw bytes and return everything the server answers until it closes."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_huge_content_length_is_refused_without_reading(client: Client) -> None:
    """Nothing of the declared 10 MB is sent: the answer must not wait for it."""
    answer = await raw_request(
        client,
        "POST /hooks/orders HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Content-Length: 10000000\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "body_too_large"


async def test_stalled_body_times_out(client: Client) -> None:
    answer = await raw_request(
        client,
        "POST /hooks/orders HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Content-Length: 50\n",
        b'{"order_id"',
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "request_timeout"


# -- 415 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{"Content-Type": "text/plain"}, {"Content-Type": "application/xml"}, {}]
)
async def test_unsupported_media_type(client: Client, headers: dict[str, str]) -> None:
    response = await client.post("/hooks/orders", data=body_of(ORDER), headers=headers)
    await error(response, 415, "unsupported_media_type")


# -- 401 / 500 signatures ----------------------------------------------------------------------


async def test_github_signature(client: Client) -> None:
    body = body_of({"action": "opened"})
    good = {**JSON, "X-Hub-Signature-256": sign_github(SECRETS["GH_SECRET"], body)}
    assert (await client.post("/hooks/gh", data=body, headers=good)).status == 202

    missing = await error(
        await client.post("/hooks/gh", data=body, headers=JSON), 401, "bad_signature"
    )
    assert "missing X-Hub-Signature-256" in missing["message"]
    wrong = {**JSON, "X-Hub-Signature-256": sign_github("not the secret", body)}
    bad = await error(
        await client.post("/hooks/gh", data=body, headers=wrong), 401, "bad_signature"
    )
    assert "mismatch" in bad["message"]
    tampered = await client.post("/hooks/gh", data=body + b" ", headers=good)
    await error(tampered, 401, "bad_signature")


async def test_stripe_signature(client: Client) -> None:
    body = body_of({"id": "evt_1", "type": "charge.succeeded"})
    secret = SECRETS["STRIPE_SECRET"]

    def headers(signature: str) -> dict[str, str]:
        return {**JSON, "Stripe-Signature": signature}

    good = headers(sign_stripe(secret, body, int(NOW) - 10))
    assert (await client.post("/hooks/stripe", data=body, headers=good)).status == 202

    await error(await client.post("/hooks/stripe", data=body, headers=JSON), 401, "bad_signature")
    stale = headers(sign_stripe(secret, body, int(NOW) - 301))
    old = await error(
        await client.post("/hooks/stripe", data=body, headers=stale), 401, "bad_signature"
    )
    assert "tolerance" in old["message"]
    wrong = headers(sign_stripe("not the secret", body, int(NOW)))
    await error(await client.post("/hooks/stripe", data=body, headers=wrong), 401, "bad_signature")
    garbled = await client.post("/hooks/stripe", data=body, headers=headers("v1=abc"))
    assert "malformed" in (await error(garbled, 401, "bad_signature"))["message"]


async def test_generic_signature(client: Client) -> None:
    secret = SECRETS["GENERIC_SECRET"]
    for n, prefix in enumerate((False, True)):
        body = body_of({"n": n})
        signed = {**JSON, "X-Signature": sign_generic(secret, body, prefix=prefix)}
        assert (await client.post("/hooks/generic", data=body, headers=signed)).status == 202

    body = body_of({"n": 9})
    await error(await client.post("/hooks/generic", data=body, headers=JSON), 401, "bad_signature")
    wrong = {**JSON, "X-Signature": sign_generic("nope", body)}
    await error(await client.post("/hooks/generic", data=body, headers=wrong), 401, "bad_signature")


async def test_signature_is_checked_before_json(client: Client) -> None:
    await error(await client.post("/hooks/gh", data=b"{oops", headers=JSON), 401, "bad_signature")


async def test_secret_missing_names_it_without_leaking(client: Client, runtime: Runtime) -> None:
    body = body_of({"a": 1})
    signed = {**JSON, "X-Hub-Signature-256": sign_github("guess", body)}
    response = await client.post("/hooks/unset", data=body, headers=signed)
    text = await response.text()
    answer = await error(response, 500, "secret_missing")
    assert "UNSET_SECRET" in answer["message"]
    assert not any(value in text for value in SECRETS.values())
    assert await executions(runtime, "unset") == []


# -- 400 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b'{"order_id": NaN}', b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000],
)
async def test_invalid_json(client: Client, runtime: Runtime, body: bytes) -> None:
    # A hook with a large limit: the 1 KiB one of "orders" would answer 413 to the deep body.
    await runtime.register(workflow("loose", {"name": "loose", "max_body_bytes": 1_000_000}))
    await error(await client.post("/hooks/loose", data=body, headers=JSON), 400, "invalid_json")


async def test_nesting_limit(client: Client, runtime: Runtime) -> None:
    await runtime.register(workflow("loose", {"name": "loose", "max_body_bytes": 1_000_000}))
    deepest = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert (await client.post("/hooks/loose", data=deepest, headers=JSON)).status == 202
    too_deep = b"[" + deepest + b"]"
    answer = await error(
        await client.post("/hooks/loose", data=too_deep, headers=JSON), 400, "invalid_json"
    )
    assert f"deeper than {MAX_DEPTH}" in answer["message"]


async def test_invalid_input_has_details(client: Client, runtime: Runtime) -> None:
    response = await client.post("/hooks/orders", json={"order_id": 7, "amount": 0})
    answer = await error(response, 400, "invalid_input")
    locations = {d["location"]: d["message"] for d in answer["details"]}
    assert set(locations) == {"input['order_id']", "input['amount']"}
    assert "not of type 'string'" in locations["input['order_id']"]
    missing = await error(await client.post("/hooks/orders", json={}), 400, "invalid_input")
    assert len(missing["details"]) == 2
    assert await executions(runtime, "orders") == []


# -- idempotency -----------------------------------------------------------------------------------


async def test_idempotency_key_header(client: Client, runtime: Runtime) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await client.post("/hooks/orders", json=ORDER, headers=headers)
    # The header wins over the body field, so a different order id still dedups.
    second = await client.post("/hooks/orders", json={**ORDER, "order_id": "o-2"}, headers=headers)
    assert first.status == 202 and second.status == 200
    first_id = (await first.json())["execution_id"]
    assert await second.json() == {"execution_id": first_id, "created": False}
    assert await executions(runtime, "orders") == [first_id]
    events = await runtime.log.read(first_id)
    assert events[0].data["metadata"]["delivery"] == "k-1"


async def test_provider_delivery_header(client: Client, runtime: Runtime) -> None:
    body = body_of({"action": "opened"})
    headers = {
        **JSON,
        "X-Hub-Signature-256": sign_github(SECRETS["GH_SECRET"], body),
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }
    answers = [await client.post("/hooks/gh", data=body, headers=headers) for _ in range(3)]
    assert [a.status for a in answers] == [202, 200, 200]
    ids = {(await a.json())["execution_id"] for a in answers}
    assert len(ids) == 1
    assert await executions(runtime, "github") == list(ids)


async def test_body_field(client: Client, runtime: Runtime) -> None:
    first = await client.post("/hooks/orders", json=ORDER)
    again = await client.post("/hooks/orders", json={**ORDER, "amount": 99})
    other = await client.post("/hooks/orders", json={**ORDER, "order_id": "o-2"})
    assert (first.status, again.status, other.status) == (202, 200, 202)
    first_id = (await first.json())["execution_id"]
    assert (await again.json())["execution_id"] == first_id
    assert sorted(await executions(runtime, "orders")) == sorted(
        [first_id, (await other.json())["execution_id"]]
    )


async def test_outcomes_of_known_hooks_are_reported() -> None:
    recorded = RecordingInstruments()
    settings = Settings(auth=False, event_log_url="memory://")
    async with Runtime(settings, clock=lambda: NOW, instruments=recorded) as runtime:
        await runtime.register(DEFINITIONS[0])
        endpoint = WebhookEndpoint(runtime, refresh_interval=0)
        client = await serve(endpoint)
        try:
            for body in (ORDER, ORDER, {"order_id": "o-2", "amount": 0}):
                await client.post("/hooks/orders", json=body)
            await client.post("/hooks/orders", data=b"{", headers=JSON)
            await client.post("/hooks/no-such-hook", json=ORDER)  # not reported: an unbounded name
        finally:
            await client.close()
            await endpoint.stop()
    outcomes = ("started", "duplicate", "rejected", "rejected")
    assert recorded.of("trigger_outcome") == [("webhook", "orders", "orders", o) for o in outcomes]


async def test_no_key_starts_each_time(client: Client, runtime: Runtime) -> None:
    """An unsigned hook without a key starts each delivery (a signed one dedups its body: below)."""
    await runtime.register(workflow("loose", {"name": "loose"}))
    for _ in range(2):
        assert (await client.post("/hooks/loose", json={"n": 1})).status == 202
    assert len(await executions(runtime, "loose")) == 2


# -- signed hooks: the key comes from what the signature covers ------------------------------------


def generic_headers(body: bytes, **extra: str) -> dict[str, str]:
    return {**JSON, "X-Signature": sign_generic(SECRETS["GENERIC_SECRET"], body), **extra}


async def test_a_signed_body_replayed_with_new_unsigned_keys_is_a_duplicate(client: Client, runtime: Runtime) -> None:
    """Was: the same signed body twice started twice; a new Idempotency-Key started it again too."""
    body = body_of({"n": 1})
    first = await client.post("/hooks/generic", data=body, headers=generic_headers(body, **{"Idempotency-Key": "a"}))
    assert first.status == 202
    first_id = (await first.json())["execution_id"]
    for key in ("a", "b", "c"):
        again = await client.post("/hooks/generic", data=body, headers=generic_headers(body, **{"Idempotency-Key": key}))
        assert again.status == 200
        assert await again.json() == {"execution_id": first_id, "created": False}
    other = body_of({"n": 2})
    assert (await client.post("/hooks/generic", data=other, headers=generic_headers(other))).status == 202
    assert len(await executions(runtime, "generic")) == 2


async def test_a_github_replay_with_a_new_delivery_id_is_a_duplicate(client: Client, runtime: Runtime) -> None:
    body = body_of({"action": "opened"})
    signed = {**JSON, "X-Hub-Signature-256": sign_github(SECRETS["GH_SECRET"], body)}
    first = await client.post("/hooks/gh", data=body, headers={**signed, "X-GitHub-Delivery": "d-1"})
    replay = await client.post(
        "/hooks/gh", data=body, headers={**signed, "X-GitHub-Delivery": "d-2", "Idempotency-Key": "fresh"}
    )
    assert (first.status, replay.status) == (202, 200)
    assert (await replay.json())["execution_id"] == (await first.json())["execution_id"]
    assert len(await executions(runtime, "github")) == 1


async def test_a_signed_body_field_wins_over_the_unsigned_idempotency_key(client: Client, runtime: Runtime) -> None:
    await runtime.register(
        workflow("signed-orders", {"name": "signed-orders", "idempotency_field": "order_id",
                                   "signature": {"preset": "generic", "secret": "GENERIC_SECRET", "header": "X-Signature"}})
    )  # fmt: skip
    one, two = body_of(ORDER), body_of({**ORDER, "order_id": "o-2"})
    first = await client.post("/hooks/signed-orders", data=one, headers=generic_headers(one, **{"Idempotency-Key": "k"}))
    # The same unsigned key on another order no longer merges them: the signed order id decides.
    second = await client.post("/hooks/signed-orders", data=two, headers=generic_headers(two, **{"Idempotency-Key": "k"}))
    assert (first.status, second.status) == (202, 202)
    events = await runtime.log.read((await second.json())["execution_id"])
    assert events[0].data["metadata"]["delivery"] == "o-2"


async def test_the_replay_window_is_exact_across_window_boundaries() -> None:
    now = [1_700_000_050.0]
    settings = Settings(auth=False, event_log_url="memory://", secrets=SECRETS)
    async with Runtime(settings, clock=lambda: now[0]) as runtime:
        await runtime.register(
            workflow("windowed", {"name": "windowed", "signature": {
                "preset": "github", "secret": "GH_SECRET", "replay_window_seconds": 100}})
        )  # fmt: skip
        endpoint = WebhookEndpoint(runtime, refresh_interval=0)
        client = await serve(endpoint)
        try:
            body = body_of({"ref": "main"})
            headers = {**JSON, "X-Hub-Signature-256": sign_github(SECRETS["GH_SECRET"], body)}

            async def post() -> tuple[int, str]:
                response = await client.post("/hooks/windowed", data=body, headers=headers)
                return response.status, (await response.json())["execution_id"]

            status, first = await post()
            assert status == 202
            now[0] += 99  # the next window's number, still within 100 s of the first: a duplicate
            assert await post() == (200, first)
            now[0] += 2  # 101 s after the first: a new delivery
            status, second = await post()
            assert status == 202 and second != first
            assert await post() == (200, second)
        finally:
            await client.close()
            await endpoint.stop()


async def test_a_zero_window_dedups_by_the_unsigned_headers_as_before(client: Client, runtime: Runtime) -> None:
    await runtime.register(
        workflow("trusting", {"name": "trusting", "signature": {
            "preset": "generic", "secret": "GENERIC_SECRET", "header": "X-Signature", "replay_window_seconds": 0}})
    )  # fmt: skip
    body = body_of({"n": 1})
    answers = [
        (await client.post("/hooks/trusting", data=body, headers=generic_headers(body, **{"Idempotency-Key": k}))).status
        for k in ("a", "b", "a")
    ]
    assert answers == [202, 202, 200]


async def test_a_generic_timestamp_is_signed_and_refused_outside_the_tolerance(client: Client, runtime: Runtime) -> None:
    await runtime.register(
        workflow("stamped", {"name": "stamped", "signature": {
            "preset": "generic", "secret": "GENERIC_SECRET", "header": "X-Signature", "timestamp_header": "X-Timestamp"}})
    )  # fmt: skip
    body = body_of({"n": 1})

    def stamped(at: int, **extra: str) -> dict[str, str]:
        signature = sign_generic(SECRETS["GENERIC_SECRET"], body, timestamp=at)
        return {**JSON, "X-Signature": signature, "X-Timestamp": str(at), **extra}

    first = await client.post("/hooks/stamped", data=body, headers=stamped(int(NOW) - 10))
    replay = await client.post("/hooks/stamped", data=body, headers=stamped(int(NOW) - 10, **{"Idempotency-Key": "x"}))
    later = await client.post("/hooks/stamped", data=body, headers=stamped(int(NOW)))
    assert (first.status, replay.status, later.status) == (202, 200, 202)
    stale = await client.post("/hooks/stamped", data=body, headers=stamped(int(NOW) - 301))
    assert "tolerance" in (await error(stale, 401, "bad_signature"))["message"]
    moved = {**stamped(int(NOW) - 10), "X-Timestamp": str(int(NOW))}  # a fresh time on an old signature
    await error(await client.post("/hooks/stamped", data=body, headers=moved), 401, "bad_signature")
    assert len(await executions(runtime, "stamped")) == 2


async def test_a_stripe_replay_within_the_tolerance_is_a_duplicate(client: Client, runtime: Runtime) -> None:
    body = body_of({"id": "evt_9", "type": "charge.succeeded"})
    signed = {**JSON, "Stripe-Signature": sign_stripe(SECRETS["STRIPE_SECRET"], body, int(NOW) - 5)}
    first = await client.post("/hooks/stripe", data=body, headers=signed)
    replay = await client.post("/hooks/stripe", data=body, headers={**signed, "Idempotency-Key": "new"})
    assert (first.status, replay.status) == (202, 200)


async def test_overlong_key_is_refused(client: Client) -> None:
    response = await client.post("/hooks/orders", json={**ORDER, "order_id": "x" * 300})
    await error(response, 400, "invalid_idempotency_key")


# -- the index follows the registry ----------------------------------------------------------------


async def test_new_definitions_are_indexed(client: Client, runtime: Runtime) -> None:
    await runtime.register(workflow("later", {"name": "later"}))  # through the observer
    assert (await client.post("/hooks/later", json={})).status == 202
    await runtime.register(workflow("later", {"name": "later", "enabled": False}))
    await error(await client.post("/hooks/later", json={}), 404, "unknown_hook")
    await runtime.register(workflow("later", {"name": "renamed"}))
    await error(await client.post("/hooks/later", json={}), 404, "unknown_hook")
    assert (await client.post("/hooks/renamed", json={})).status == 202


async def test_miss_refreshes_from_the_registry(client: Client, runtime: Runtime) -> None:
    """A definition registered elsewhere (here: straight into the registry) is found on a miss."""
    await runtime.registry.register(workflow("elsewhere", {"name": "elsewhere"}))
    assert (await client.post("/hooks/elsewhere", json={})).status == 202


async def test_stop_detaches_the_observer(runtime: Runtime) -> None:
    endpoint = WebhookEndpoint(runtime)
    async with endpoint:
        assert endpoint.index.apply in runtime.definition_observers
    assert endpoint.index.apply not in runtime.definition_observers
