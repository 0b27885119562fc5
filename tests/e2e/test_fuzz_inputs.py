"""Hypothesis over the HTTP edge, in-process: random webhook bodies and headers, random query
parameters, random (almost valid) definitions. Whatever arrives, the answer is one of the
documented statuses with a JSON error code, never a 500 or a traceback; what is accepted is
really there; a signed delivery sent twice starts one execution."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.e2e.test_webhook_http import DEFINITIONS, NOW, SECRETS
from triggers.signatures import sign_github

Client = TestClient[web.Request, web.Application]
# Examples share one app (the fixture is set up once per test, on purpose). The same variables
# as tests/e2e/test_fuzz_openapi.py make a longer hunt: ORCHESTRATOR_FUZZ_EXAMPLES, _RANDOM=1.
FUZZ = settings(
    max_examples=int(os.environ.get("ORCHESTRATOR_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    derandomize=os.environ.get("ORCHESTRATOR_FUZZ_RANDOM") != "1",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HOOK_STATUSES = {200, 202, 400, 401, 404, 408, 413, 415}

# -- strategies ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.integers(1, 400).map(lambda depth: b"[" * depth + b"]" * depth),
    st.sampled_from([b"", b"{", b'{"a": NaN}', b"\xff\xfe", b'{"order_id": "o", "amount": 1e999}']),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/cloudevents+json",
        "application/vnd.acme+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
    ]
)
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
headers = st.dictionaries(
    st.sampled_from(
        [
            "X-Hub-Signature-256",
            "X-GitHub-Delivery",
            "Idempotency-Key",
            "Stripe-Signature",
            "X-Signature",
            "ce-specversion",
            "ce-id",
            "ce-source",
            "ce-type",
            "ce-time",
            "ce-subject",
            "X-Orchestrator-Tenant",
        ]
    ),
    header_values | st.sampled_from(["1.0", "sha256=00", "t=1,v1=00", "2024-01-01T00:00:00Z", ""]),
    max_size=5,
)
hook_names = st.sampled_from(["orders", "gh", "stripe", "generic", "orders-off", "nope", "%2e%2e"])


# -- the app ------------------------------------------------------------------------------------


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(auth=False, event_log_url="memory://", secrets=SECRETS)
    async with Runtime(settings, clock=lambda: NOW) as runtime:
        for definition in DEFINITIONS:
            await runtime.register(definition)
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
        yield client


async def answered(response: Any, allowed: set[int]) -> dict[str, Any]:
    """The JSON answer, its status allowed; an error names its code; no traceback anywhere."""
    text = await response.text()
    assert response.status in allowed, (response.status, text[:500])
    assert "Traceback" not in text
    body: dict[str, Any] = json.loads(text)
    if response.status >= 400:
        assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    return body


# -- webhooks -----------------------------------------------------------------------------------


@FUZZ
@given(name=hook_names, body=bodies, content_type=content_types, extra=headers)
async def test_any_webhook_request_gets_a_documented_answer(
    client: Client, runtime: Runtime, name: str, body: bytes, content_type: str, extra: dict[str, str]
) -> None:
    response = await client.post(f"/hooks/{name}", data=body, headers={"Content-Type": content_type, **extra})
    answer = await answered(response, HOOK_STATUSES)
    if response.status in (200, 202):
        await runtime.summary(answer["execution_id"], tenant="default")  # really there


@FUZZ
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5), delivery=header_values)
async def test_a_signed_delivery_sent_twice_starts_once(
    client: Client, payload: dict[str, Any], delivery: str
) -> None:
    raw = json.dumps(payload).encode()
    sent = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_github(SECRETS["GH_SECRET"], raw),
        "X-GitHub-Delivery": f"d-{delivery}",
    }
    first = await answered(await client.post("/hooks/gh", data=raw, headers=sent), {200, 202})
    again = await answered(await client.post("/hooks/gh", data=raw, headers=sent), {200})
    assert again["execution_id"] == first["execution_id"] and again["created"] is False
    tampered = {**sent, "X-Hub-Signature-256": sign_github("another secret", raw)}
    await answered(await client.post("/hooks/gh", data=raw, headers=tampered), {401})


# -- query parameters ---------------------------------------------------------------------------

QUERY_PATHS = [
    "/api/v1/executions",
    "/api/v1/executions/x/history",
    "/api/v1/executions/x/timeline",
    "/api/v1/executions/x/state",
    "/api/v1/definitions/orders",
    "/api/v1/definitions/orders/diff",
    "/api/v1/triggers",
]
query_names = st.sampled_from(
    ["limit", "after", "cursor", "status", "workflow", "type", "at", "version", "from", "to",
     "started_after", "started_before", "other"]
)  # fmt: skip
query_values = st.one_of(
    header_values,
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["", "0", "-1", "1e3", "1001", "2024-01-01T00:00:00Z", "StepFailed,Nope", "\u00e9"]),
)


@FUZZ
@given(path=st.sampled_from(QUERY_PATHS), query=st.dictionaries(query_names, query_values, max_size=4))
async def test_any_query_gets_a_documented_answer(client: Client, path: str, query: dict[str, str]) -> None:
    response = await client.get(path, params=query)
    await answered(response, {200, 400, 404})


# -- definitions --------------------------------------------------------------------------------

step_types = st.sampled_from(["task", "choice", "wait", "wait_for_event", "parallel", "succeed", "fail", "bogus"])
steps = st.fixed_dictionaries(
    {"name": st.text(max_size=6), "type": step_types},
    optional={
        "next": st.text(max_size=6),
        "connector": st.sampled_from(["noop", "http", "python", "nope"]),
        "input": json_values,
        "seconds": st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=False, allow_infinity=False)),
        "retry": json_values,
        "choices": json_values,
        "branches": json_values,
        "event": st.text(max_size=6),
        "timeout_seconds": json_values,
    },
)
definitions = st.fixed_dictionaries(
    {"name": st.text(max_size=10), "steps": st.lists(steps, max_size=4)},
    optional={
        "version": st.one_of(st.integers(-3, 2**64), st.text(max_size=3)),
        "input_schema": json_values,
        "triggers": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["webhook", "kafka", "amqp", "x"]), "name": st.text(max_size=6)},
                optional={"signature": json_values, "topics": json_values, "enabled": json_values},
            ),
            max_size=2,
        ),
        "retention": json_values,
        "description": json_values,
    },
)


@FUZZ
@given(definition=st.one_of(definitions, json_values))
async def test_any_definition_gets_a_documented_answer(client: Client, definition: Any) -> None:
    response = await client.post("/api/v1/definitions", json=definition)
    answer = await answered(response, {200, 201, 400, 409})
    if response.status in (200, 201):
        fetched = await client.get(f"/api/v1/definitions/{answer['name']}", params={"version": answer["version"]})
        assert fetched.status == 200
