"""Webhooks: ``POST /hooks/{name}`` (the ``default`` tenant's hooks) and
``POST /hooks/{tenant}/{name}`` (any tenant's) start the workflow whose definition declares that
hook. Hook names are unique within a tenant: two tenants may each have a hook named ``github``.

Checks run in a fixed order (unknown hook, size, media type, signature, JSON, input) and each
failure is a JSON error. The 202 goes out only after the start event is durable; a repeated
delivery (same dedup key, ``triggers.delivery_keys``: on a signed hook only signed content picks
it, with a replay window) answers 200 with the existing execution id and starts nothing.

A CloudEvent (HTTP binding, binary ``ce-*`` headers or structured ``application/cloudevents+json``)
starts the workflow with its ``data`` as input; its ``source`` + ``id`` is a dedup key (see
``triggers.delivery_keys``). An invalid CloudEvent (e.g. a missing required attribute) is a 400
``invalid_cloudevent``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from orchestrator.api.errors import error_response, response_for
from orchestrator.api.requests import TENANT_KEY, TENANT_PARAM, is_json_type, read_payload, request_tenant
from orchestrator.api.routes import JSON, Body, Permission, Route, path_param
from orchestrator.api.visibility import visible
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.instrumentation import TriggerOutcome
from orchestrator.lifecycle import Lifecycle
from orchestrator.runtime import Runtime, execution_id_for
from schemas import cloudevents, traceparent
from schemas.cloudevents import BadMessage
from schemas.definition import WebhookTrigger, WorkflowDefinition
from schemas.tenant import DEFAULT_TENANT, TenantInvalid, check_tenant
from triggers.delivery_keys import Delivery, DeliveryKey, delivery_key
from triggers.inbound import webhook_actor
from triggers.signatures import SignatureError, header_name, verify

log = logging.getLogger(__name__)

OUTCOMES: dict[int, TriggerOutcome] = {202: "started", 200: "duplicate"}


@dataclass(frozen=True, slots=True)
class Hook:
    """One entry of the index: the workflow (and version) that declared the hook."""

    workflow: str
    version: int
    config: WebhookTrigger


class HookIndex:
    """(tenant, hook name) -> Hook from definitions; a newer version of a workflow replaces its
    hooks. A hook's tenant is its trigger's, which registration makes the definition's."""

    def __init__(self) -> None:
        self._hooks: dict[tuple[str, str], Hook] = {}
        self._versions: dict[str, int] = {}

    def get(self, tenant: str, name: str) -> Hook | None:
        return self._hooks.get((tenant, name))

    def items(self) -> list[tuple[tuple[str, str], Hook]]:
        return sorted(self._hooks.items())

    def apply(self, definition: WorkflowDefinition) -> None:
        """Index a definition's webhooks unless a newer version of it is already indexed."""
        version = definition.version or 0
        if version < self._versions.get(definition.name, 0):
            return
        self._versions[definition.name] = version
        for key in [k for k, h in self._hooks.items() if h.workflow == definition.name]:
            del self._hooks[key]
        for trigger in definition.triggers:
            if not isinstance(trigger, WebhookTrigger):
                continue
            key = (trigger.tenant, trigger.name)
            taken = self._hooks.get(key)
            if taken is not None:
                log.warning(
                    "hook %r moves from workflow %r to %r",
                    trigger.name,
                    taken.workflow,
                    definition.name,
                )
            self._hooks[key] = Hook(definition.name, version, trigger)


class WebhookEndpoint(Lifecycle):
    """The webhook routes over a Runtime: ``await start()``, then serve ``routes()`` (an
    :func:`orchestrator.api.app.create_app` route provider)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        refresh_interval: float = 1.0,
        body_timeout: float = 30.0,
        overrides: Callable[[], Mapping[tuple[str, str], bool]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.index = HookIndex()
        # Operators' enable/disable of triggers, (workflow, hook) -> enabled (the trigger manager's).
        self.overrides = overrides
        self.refresh_interval = refresh_interval  # at most one registry scan per interval on misses
        self.body_timeout = body_timeout
        self._refreshed_at: float | None = None
        self._refresh_lock = asyncio.Lock()

    async def start(self) -> None:
        """Index every workflow's latest version and follow new registrations."""
        if self.index.apply not in self.runtime.definition_observers:
            self.runtime.definition_observers.append(self.index.apply)
        await self.refresh(force=True)

    async def stop(self) -> None:
        if self.index.apply in self.runtime.definition_observers:
            self.runtime.definition_observers.remove(self.index.apply)

    async def refresh(self, *, force: bool = False) -> None:
        """Re-read the registry (e.g. definitions registered by another process); throttled."""
        async with self._refresh_lock:
            now = time.monotonic()
            recent = self._refreshed_at is not None and now - self._refreshed_at < self.refresh_interval
            if recent and not force:
                return
            self._refreshed_at = now
            for definition in await self.runtime.registry.list():
                self.index.apply(definition)

    def routes(self) -> list[Route]:
        """Public routes: a hook authenticates its deliveries with its own signature."""
        summary = (
            "Start the workflow that declares this webhook (signature checked when configured). "
            "A CloudEvent (binary ce-* headers or structured application/cloudevents+json) starts "
            "it with its data; its source + id is the dedup key unless an idempotency key is given."
        )
        responses = "202:StartResult 200:StartResult 400 401 404 408 413 415"
        name = path_param("name", "Webhook name.")
        return [
            Route(
                "GET", "/hooks", self.list_hooks, Permission.TRIGGERS_READ, "listWebhooks",
                "Webhooks of the latest definitions of the request's tenant that the caller's grants select.",
                "200:HookList", (TENANT_PARAM,), filtered=True,
            ),
            Route(
                "POST", "/hooks/{name}", self.deliver, None, "deliverWebhook",
                summary + " A hook of the default tenant.", responses, (name,),
                body=Body(((JSON, {}),), required=False),
            ),
            Route(
                "POST", "/hooks/{tenant}/{name}", self.deliver, None, "deliverTenantWebhook",
                summary + " A hook of the tenant named in the path.", responses,
                (path_param("tenant", "The tenant whose hook it is."), name),
                body=Body(((JSON, {}),), required=False),
            ),
        ]

    async def list_hooks(self, request: web.Request) -> web.Response:
        tenant, shown = request_tenant(request), visible(request, Permission.TRIGGERS_READ)
        hooks = [
            {
                "name": name,
                "workflow": hook.workflow,
                "version": hook.version,
                "signed": hook.config.signature is not None,
                "preset": hook.config.signature.preset if hook.config.signature else None,
                "enabled": self.enabled(hook),
            }
            for (owner, name), hook in self.index.items()
            if owner == tenant and shown(hook.workflow)
        ]
        return web.json_response({"hooks": hooks})

    def enabled(self, hook: Hook) -> bool:
        """The operator's override when there is one, else the definition's flag."""
        states = self.overrides() if self.overrides is not None else {}
        return states.get((hook.workflow, hook.config.name), hook.config.enabled)

    async def _lookup(self, tenant: str, name: str) -> Hook | None:
        hook = self.index.get(tenant, name)
        if hook is None or not self.enabled(hook):
            await self.refresh()
            hook = self.index.get(tenant, name)
        return hook if hook is not None and self.enabled(hook) else None

    async def deliver(self, request: web.Request) -> web.StreamResponse:
        """``POST /hooks/[{tenant}/]{name}``: verify the delivery and start (or find) its execution.

        The outcome of a known hook's delivery goes to the runtime's instruments: ``started``
        (202), ``duplicate`` (200), ``rejected`` (4xx), ``retried`` (5xx: the sender retries)."""
        name = request.match_info["name"]
        tenant = request.match_info.get("tenant", DEFAULT_TENANT)
        hook = await self._lookup(tenant, name) if _valid(tenant) else None
        if hook is not None:
            request[TENANT_KEY] = tenant  # the audit record's tenant is the hook's, never a header's
        if hook is None:  # not reported: the name is the sender's, not a bounded label
            where = "" if tenant == DEFAULT_TENANT else f" in tenant {tenant[:63]!r}"
            return error_response(404, "unknown_hook", f"no enabled webhook named {name!r}{where}")
        status = 500
        try:
            response = await self._accept(request, name, hook)
            status = response.status
        finally:
            outcome = OUTCOMES.get(status) or ("rejected" if status < 500 else "retried")
            self.runtime.instruments.trigger_outcome("webhook", hook.workflow, name, outcome)
        return response

    async def _accept(self, request: web.Request, name: str, hook: Hook) -> web.StreamResponse:
        config = hook.config
        body = await self._read_body(request, config.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        binary_event = cloudevents.is_binary_cloudevent(request.headers)
        if not is_json_type(request.content_type) and not binary_event:
            return error_response(
                415,
                "unsupported_media_type",
                f"expected application/json, got {request.content_type}",
            )
        signed_at = self._check_signature(name, config, request, body)
        if isinstance(signed_at, web.Response):
            return signed_at
        try:
            payload, event = read_payload(request, body, binary_event)
        except BadMessage as exc:
            return error_response(400, "invalid_cloudevent", f"invalid CloudEvent: {exc}")
        except ValueError as exc:
            return error_response(400, "invalid_json", f"the body is not valid JSON: {exc}")
        delivery = Delivery(request.headers, body, payload, event, binary_event, signed_at)
        try:
            key = delivery_key(config, delivery, self.runtime.clock())
        except ValueError as exc:
            return error_response(400, "invalid_idempotency_key", str(exc))
        return await self._start(name, hook, payload, key, request.headers.get(traceparent.HEADER))

    async def _read_body(self, request: web.Request, limit: int) -> bytes | web.Response:
        try:
            body = await asyncio.wait_for(read_bounded(request, limit), self.body_timeout)
        except TimeoutError:
            failure = error_response(408, "request_timeout", "the body did not arrive in time")
        else:
            if body is not None:
                return body
            failure = error_response(413, "body_too_large", f"the body exceeds {limit} bytes")
        failure.force_close()  # the rest of the body is not read: do not reuse the connection
        return failure

    def _check_signature(
        self, name: str, config: WebhookTrigger, request: web.Request, body: bytes
    ) -> web.Response | int | None:
        """A 401/500 response, else the signed timestamp (None: unsigned, or none signed)."""
        signature = config.signature
        if signature is None:
            return None
        secret = self.runtime.settings.secret(signature.secret)
        if secret is None:
            log.error("webhook %r: secret %r is not configured", name, signature.secret)
            return error_response(
                500,
                "secret_missing",
                f"the webhook secret {signature.secret!r} is not configured "
                f"(set ORCHESTRATOR_SECRET_{signature.secret.upper()})",
            )
        header = header_name(signature.preset, signature.header)
        stamp = signature.timestamp_header
        try:
            return verify(
                signature.preset,
                secret,
                body,
                request.headers.get(header),
                now=self.runtime.clock(),
                header=header,
                tolerance_seconds=signature.tolerance_seconds,
                timestamp_header=stamp,
                timestamp=request.headers.get(stamp) if stamp else None,
            )
        except SignatureError as exc:
            return error_response(401, "bad_signature", f"invalid webhook signature: {exc.reason}")

    async def _start(
        self, name: str, hook: Hook, payload: Any, key: DeliveryKey, trace: str | None = None
    ) -> web.Response:
        try:
            earlier = await self._replayed(hook, key)
            if earlier is not None:
                return web.json_response({"execution_id": earlier, "created": False}, status=200)
            result = await self.runtime.start_execution(
                hook.workflow,
                payload,
                dedup_key=key.key,
                actor=webhook_actor(name),
                tenant=hook.config.tenant,
                metadata={
                    "trigger": "webhook",
                    "hook": name,
                    "delivery": key.key,
                    **traceparent.start_metadata(trace),
                },
            )
        except Exception as exc:
            known = response_for(exc)
            if known is None:
                raise  # the app's error middleware logs it and answers 500 without details
            return known
        if not result.created and not result.debounced:
            return web.json_response({"execution_id": result.execution_id, "created": False}, status=200)
        status_url = f"/api/v1/executions/{result.execution_id}"
        answer: dict[str, str | bool] = {"execution_id": result.execution_id, "created": result.created}
        if result.debounced:  # recorded on the quiet execution with the same debounce key
            answer["debounced"] = True
        return web.json_response(
            {**answer, "status_url": status_url},
            status=202,
            headers={"Location": status_url},
        )

    async def _replayed(self, hook: Hook, key: DeliveryKey) -> str | None:
        """The execution this delivery replays within the replay window, read from the event log
        (so every process answers alike), else None."""
        if key.previous is None:
            return None
        execution_id = execution_id_for(hook.config.tenant, hook.workflow, key.previous)
        summary = await self.runtime.log.summary(execution_id)
        if summary is None or parse_rfc3339(summary.started_at) < key.since:
            return None
        return execution_id


def _valid(tenant: str) -> bool:
    try:
        check_tenant(tenant)
    except TenantInvalid:
        return False
    return True


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit`` bytes (declared or sent)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
