"""``GET /api/v1/feed/stream``: live updates as server-sent events, from the event feed.

Each committed event of the request's tenant (of one execution with ``?execution=ID``) after the
moment the stream opened is sent as an SSE ``event`` whose data is its CloudEvent; its ``data``
is redacted without ``payloads:read``. The stream follows the feed (docs/feed.md) from its head,
so it starts where the feed stands; a client loads the history first (the REST routes) and takes
the stream as the signal to refresh. Comments keep idle connections open. A stream ends after
``max_seconds`` (the browser's EventSource reconnects), and a process serves at most
``max_streams`` at once (503 ``too_many_streams`` beyond), so no request does unbounded work.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import redaction
from orchestrator.api.errors import error_response
from orchestrator.api.requests import TENANT_PARAM, query_params, request_tenant
from orchestrator.api.routes import Permission, Route
from orchestrator.ports import EventFeed

STREAM = "/api/v1/feed/stream"


class StreamParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    execution: str | None = Field(None, min_length=1, max_length=200, description="Only this execution's events.")


class FeedStreamApi:
    """Server-sent events over ``feed``."""

    def __init__(
        self,
        feed: EventFeed,
        *,
        poll: float = 0.25,
        keepalive: float = 5.0,
        max_seconds: float = 300.0,
        max_streams: int = 200,
    ) -> None:
        self.feed = feed
        self.poll = poll
        self.keepalive = keepalive
        self.max_seconds = max_seconds
        self.max_streams = max_streams
        self.open = 0

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", STREAM, self.stream, Permission.EXECUTIONS_READ, "streamFeed",
                "Server-sent events: each event of the tenant (or of one execution) committed from now "
                "on, as a CloudEvent (data redacted without payloads:read).",
                "200 400 503", (TENANT_PARAM,), query=StreamParams,
            )
        ]  # fmt: skip

    async def stream(self, request: web.Request) -> web.StreamResponse:
        params = query_params(request, StreamParams)
        tenant = request_tenant(request)
        if self.open >= self.max_streams:
            return error_response(503, "too_many_streams", "too many live streams; retry later", headers={"Retry-After": "5"})
        self.open += 1
        try:
            return await self._follow(request, tenant, params.execution)
        finally:
            self.open -= 1

    async def _follow(self, request: web.Request, tenant: str, execution: str | None) -> web.StreamResponse:
        position = await self.feed.head()
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        visible = redaction.payloads_visible(request)
        started = last_write = time.monotonic()
        try:
            await response.write(b"retry: 2000\n: open\n\n")
            while time.monotonic() - started < self.max_seconds:
                transport = request.transport
                if transport is None or transport.is_closing():  # the client went away: stop polling
                    return response
                page = await self.feed.read_after(position, 500)
                position = page.last
                for _, envelope in page.items:
                    if envelope.tenant != tenant or (execution is not None and envelope.subject != execution):
                        continue
                    event = envelope.to_cloudevent()
                    shown = event if visible else redaction.event(event)
                    data = json.dumps(shown, separators=(",", ":"), default=str)
                    await response.write(f"event: event\nid: {envelope.subject}:{envelope.sequence}\ndata: {data}\n\n".encode())
                    last_write = time.monotonic()
                if not page.items:
                    if time.monotonic() - last_write >= self.keepalive:
                        await response.write(b": keepalive\n\n")
                        last_write = time.monotonic()
                    await asyncio.sleep(self.poll)
        except ConnectionResetError:  # the client went away
            return response
        return response
