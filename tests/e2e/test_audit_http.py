"""Audit completeness over HTTP: each API action produces exactly one audit record with the right
actor, action, resource, outcome and reason; denied requests and failed logins are recorded; the
request id is honoured and echoed; control actions carry actor and reason into the history."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api.app import api_providers, create_app
from orchestrator.api.auditing import AUTH_FAILURE_KEY, PRINCIPAL_KEY, REQUEST_ID_HEADER, audit_middleware
from orchestrator.api.errors import error_response
from orchestrator.api.routes import route_permission
from orchestrator.audit.query import AuditQuery, search
from orchestrator.audit.record import SealedRecord
from orchestrator.audit.verify import verify_chain
from orchestrator.auth.principal import Principal
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from triggers.manager import TriggerManager
from triggers.webhook import WebhookEndpoint

Client = TestClient[web.Request, web.Application]
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")  # plain string keys
T0 = 1_700_000_000.0
WAITER = {
    "name": "waiter",
    "triggers": [
        {"type": "webhook", "name": "signed", "signature": {"preset": "github", "secret": "HOOK_SECRET"}},
        {"type": "webhook", "name": "open"},
    ],
    "steps": [
        {
            "name": "wait",
            "type": "wait_for_event",
            "event": "go",
            "correlation_key": "input.key",
            "next": "done",
        },
        {"name": "done", "type": "succeed"},
    ],
}
ALICE = Principal("alice", "key", "default", {"default": ("operator",)}, credential_id="kid_alice")
VIEWER = Principal("vic", "key", "default", {"default": ("viewer",)}, credential_id="kid_vic")


@web.middleware
async def fake_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Stands in for the authentication middleware: what it leaves on the request is all the
    audit middleware reads."""
    token = request.headers.get("Authorization", "")
    if token == "Bearer revoked":
        request[AUTH_FAILURE_KEY] = "key_revoked"
        return error_response(401, "unauthenticated", "the key is revoked")
    if token == "Bearer viewer":
        request[PRINCIPAL_KEY] = VIEWER
        request["actor"] = VIEWER.actor
        if route_permission(request) not in (None, "executions:read", "definitions:read"):
            return error_response(403, "forbidden", "not permitted")
    elif token == "Bearer alice":
        request[PRINCIPAL_KEY] = ALICE
        request["actor"] = ALICE.actor
    return await handler(request)


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(event_log_url="memory://", secrets={"HOOK_SECRET": "s3cret"})
    async with Runtime(settings, clock=lambda: T0) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    manager = TriggerManager(runtime, runtime.settings, run_sources=False)
    await manager.start()
    webhooks = WebhookEndpoint(runtime, overrides=lambda: manager.overrides)
    await webhooks.start()
    app = create_app(
        [*api_providers(runtime, manager), webhooks],
        max_body_bytes=1 << 20,
        middlewares=[audit_middleware(runtime.audit), fake_auth],  # audit outside auth
    )
    async with TestClient(TestServer(app)) as client:
        yield client
    await webhooks.stop()
    await manager.stop()


async def records(runtime: Runtime) -> list[SealedRecord]:
    return (await search(runtime.audit.log, AuditQuery(limit=1000))).items


async def call(
    client: Client, method: str, path: str, body: Any = None, **headers: str
) -> tuple[int, Any, str]:
    """(status, JSON answer, request id) of a request sent as alice unless headers say otherwise."""
    headers.setdefault("Authorization", "Bearer alice")
    headers.setdefault("Content-Type", "application/json")
    data = None if body is None else json.dumps(body)
    async with client.request(method, path, data=data, headers=headers) as response:
        answer = await response.json() if response.content_type == "application/json" else None
        return response.status, answer, response.headers[REQUEST_ID_HEADER]


async def one_record(runtime: Runtime, request_id: str) -> SealedRecord:
    """The only audit record of a request."""
    found = [s for s in await records(runtime) if s.record.request_id == request_id]
    assert len(found) == 1, found
    return found[0]


async def test_every_action_is_recorded_once_with_actor_resource_outcome_and_reason(
    client: Client, runtime: Runtime
) -> None:
    status, _, rid = await call(client, "POST", "/api/v1/definitions", WAITER)
    assert status == 201
    register = await one_record(runtime, rid)

    status, started, rid = await call(
        client, "POST", "/api/v1/executions", {"workflow": "waiter", "input": {"key": "k"}}
    )
    assert status == 202
    start = await one_record(runtime, rid)
    execution = started["execution_id"]

    _, _, rid = await call(
        client, "POST", f"/api/v1/executions/{execution}/signals", {"name": "s", "reason": "nudge"}
    )
    signal = await one_record(runtime, rid)
    _, _, rid = await call(client, "GET", f"/api/v1/executions/{execution}")
    read = await one_record(runtime, rid)
    _, _, rid = await call(client, "GET", f"/api/v1/executions/{execution}/history")
    history_read = await one_record(runtime, rid)
    status, _, rid = await call(
        client, "POST", f"/api/v1/executions/{execution}/cancel", {"reason": "customer asked"}
    )
    assert status == 200
    cancel = await one_record(runtime, rid)
    status, redriven, rid = await call(
        client, "POST", f"/api/v1/executions/{execution}/redrive", {"reason": "retry it"}
    )
    assert status == 202
    redrive = await one_record(runtime, rid)
    _, delivered, rid = await call(
        client, "POST", "/api/v1/events", {"name": "go", "correlation_key": "k", "reason": "approved"}
    )
    assert delivered == {"delivered_to": [redriven["execution_id"]]}
    event = await one_record(runtime, rid)
    _, _, rid = await call(
        client,
        "POST",
        "/api/v1/executions/redrive",
        {"workflow": "waiter", "status": "cancelled", "reason": "bulk"},
    )
    bulk = await one_record(runtime, rid)
    _, _, rid = await call(client, "POST", "/api/v1/replay/verify", {"workflow": "waiter"})
    replay = await one_record(runtime, rid)
    _, _, rid = await call(client, "POST", "/api/v1/triggers/waiter/open/disable")
    disable = await one_record(runtime, rid)
    _, _, rid = await call(client, "POST", "/api/v1/triggers/waiter/open/enable")
    enable = await one_record(runtime, rid)

    seen = [
        (s.record.action, s.record.resource.type, s.record.resource.id, s.record.outcome, s.record.reason)
        for s in (
            register,
            start,
            signal,
            read,
            history_read,
            cancel,
            redrive,
            event,
            bulk,
            replay,
            disable,
            enable,
        )
    ]
    assert seen == [
        ("definitions:write", "definitions", "waiter", "ok", None),
        ("executions:start", "executions", execution, "ok", None),
        ("executions:signal", "executions", execution, "ok", "nudge"),
        ("payloads:read", "executions", execution, "ok", None),
        ("payloads:read", "executions", execution, "ok", None),
        ("executions:cancel", "executions", execution, "ok", "customer asked"),
        ("executions:redrive", "executions", execution, "ok", "retry it"),
        ("events:publish", "events", "go", "ok", "approved"),
        ("executions:redrive", "executions", None, "ok", "bulk"),
        ("replay:verify", "replay", None, "ok", None),
        ("triggers:write", "triggers", "waiter/open", "ok", None),
        ("triggers:write", "triggers", "waiter/open", "ok", None),
    ]
    actors = {
        (s.record.actor.kind, s.record.actor.subject, s.record.actor.credential_id)
        for s in await records(runtime)
    }
    assert actors == {("key", "alice", "kid_alice")}
    assert {s.record.tenant for s in await records(runtime)} == {"default"}
    assert [disable.record.details["operation"], enable.record.details["operation"]] == [
        "disableTrigger",
        "enableTrigger",
    ]
    assert redrive.record.details["redriven_as"] == redriven["execution_id"]
    assert bulk.record.details["operation"] == "redriveExecutions" and bulk.record.details["dry_run"] is True
    assert start.record.details["workflow"] == "waiter" and start.record.source == "127.0.0.1"
    assert len(await records(runtime)) == 12
    assert (await verify_chain(runtime.audit.log)).ok


async def test_control_actions_carry_actor_and_reason_into_the_history(
    client: Client, runtime: Runtime
) -> None:
    await call(client, "POST", "/api/v1/definitions", WAITER)
    _, started, _ = await call(
        client, "POST", "/api/v1/executions", {"workflow": "waiter", "input": {"key": "k"}}
    )
    execution = started["execution_id"]
    await call(client, "POST", f"/api/v1/executions/{execution}/signals", {"name": "s", "reason": "nudge"})
    await call(client, "POST", f"/api/v1/executions/{execution}/cancel", {"reason": "customer asked"})
    _, redriven, _ = await call(
        client, "POST", f"/api/v1/executions/{execution}/redrive", {"reason": "retry it"}
    )
    await call(client, "POST", "/api/v1/events", {"name": "go", "correlation_key": "k", "reason": "approved"})

    events = await runtime.history(execution)
    by_type = {e.type: e for e in events}
    assert (by_type["SignalReceived"].actor, by_type["SignalReceived"].data["reason"]) == (
        "key:alice",
        "nudge",
    )
    assert (by_type["ExecutionCancelled"].actor, by_type["ExecutionCancelled"].data["reason"]) == (
        "key:alice",
        "customer asked",
    )
    again = {e.type: e for e in await runtime.history(redriven["execution_id"])}
    assert again["ExecutionStarted"].actor == "key:alice"
    assert again["ExecutionStarted"].data["metadata"]["reason"] == "retry it"
    assert (again["EventReceived"].actor, again["EventReceived"].data["reason"]) == ("key:alice", "approved")


async def test_denied_requests_and_failed_logins_are_recorded(client: Client, runtime: Runtime) -> None:
    status, answer, rid = await call(
        client, "POST", "/api/v1/executions/x/cancel", {}, Authorization="Bearer revoked"
    )
    assert (status, answer["error"]["code"]) == (401, "unauthenticated")
    login = await one_record(runtime, rid)
    status, _, rid = await call(
        client, "POST", "/api/v1/executions/x/cancel", {}, Authorization="Bearer viewer"
    )
    assert status == 403
    forbidden = await one_record(runtime, rid)
    status, _, rid = await call(client, "POST", "/api/v1/executions/nope/cancel", {})
    assert status == 404
    failed = await one_record(runtime, rid)

    assert (login.record.action, login.record.outcome, login.record.reason) == (
        "executions:cancel",
        "denied",
        "key_revoked",
    )
    assert login.record.actor.subject == "api"  # nobody authenticated
    assert (forbidden.record.outcome, forbidden.record.reason) == ("denied", "forbidden")
    assert (forbidden.record.actor.subject, forbidden.record.actor.credential_id) == ("vic", "kid_vic")
    assert (failed.record.outcome, failed.record.reason, failed.record.resource.id) == (
        "failed",
        "unknown_execution",
        "nope",
    )


async def test_webhooks_record_refusals_not_starts(client: Client, runtime: Runtime) -> None:
    """A start by a webhook is in its execution's history (actor webhook:<name>); a bad
    signature is a denied request in the audit trail."""
    await call(client, "POST", "/api/v1/definitions", WAITER)
    before = len(await records(runtime))

    status, _, _ = await call(client, "POST", "/hooks/open", {"key": "a"})
    assert status == 202
    assert len(await records(runtime)) == before
    status, _, rid = await call(
        client, "POST", "/hooks/signed", {"key": "a"}, **{"X-Hub-Signature-256": "sha256=00"}
    )
    assert status == 401
    refused = await one_record(runtime, rid)
    assert (refused.record.action, refused.record.resource.id, refused.record.outcome, refused.record.reason) == (
        "webhooks:deliver", "signed", "denied", "bad_signature",
    )  # fmt: skip


async def test_the_request_id_is_honoured_or_made_and_always_echoed(client: Client, runtime: Runtime) -> None:
    _, _, rid = await call(client, "GET", "/api/v1/executions", **{REQUEST_ID_HEADER: "req-42"})
    assert rid == "req-42"
    assert (await one_record(runtime, "req-42")).record.action == "executions:read"
    _, _, made = await call(client, "GET", "/api/v1/executions", **{REQUEST_ID_HEADER: "bad id\twith space"})
    assert made != "bad id\twith space" and len(made) == 32
    _, _, health = await call(client, "GET", "/healthz")
    assert health and not [
        s for s in await records(runtime) if s.record.request_id == health
    ]  # public: not audited


async def test_get_audit_filters_pages_and_keeps_tenants_apart(client: Client, runtime: Runtime) -> None:
    for _ in range(3):
        await call(client, "GET", "/api/v1/executions")
    await call(client, "GET", "/api/v1/executions", **{"X-Orchestrator-Tenant": "other"})
    await call(client, "POST", "/api/v1/executions/x/cancel", {}, Authorization="Bearer viewer")

    status, page, _ = await call(client, "GET", "/api/v1/audit?action=executions:read&limit=2")
    assert status == 200 and [r["sequence"] for r in page["items"]] == [1, 2]
    _, rest, _ = await call(
        client, "GET", f"/api/v1/audit?action=executions:read&cursor={page['next_cursor']}"
    )
    assert [r["sequence"] for r in rest["items"]] == [3] and rest["next_cursor"] is None
    _, denied, _ = await call(client, "GET", "/api/v1/audit?actor=key:vic")
    assert [(r["action"], r["outcome"]) for r in denied["items"]] == [("executions:cancel", "denied")]
    _, other, _ = await call(client, "GET", "/api/v1/audit", **{"X-Orchestrator-Tenant": "other"})
    assert {r["tenant"] for r in other["items"]} == {"other"}
    record = other["items"][0]
    assert len(record["hash"]) == 64 and record["format"] == 1
    status, bad, _ = await call(client, "GET", "/api/v1/audit?since=yesterday")
    assert status == 400 and bad["error"]["code"] == "invalid_parameter"
    _, reads, _ = await call(client, "GET", "/api/v1/audit?action=audit:read")
    # Reading the trail is recorded too: the four reads before in this tenant (one refused).
    assert [r["outcome"] for r in reads["items"]] == ["ok", "ok", "ok", "failed"]


async def test_a_reason_longer_than_1000_characters_is_refused(client: Client, runtime: Runtime) -> None:
    status, answer, rid = await call(client, "POST", "/api/v1/executions/x/cancel", {"reason": "x" * 1001})
    assert (status, answer["error"]["code"]) == (400, "invalid_body")
    assert (await one_record(runtime, rid)).record.outcome == "failed"
