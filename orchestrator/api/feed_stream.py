"""``GET /api/v1/feed/stream``: live updates as server-sent events, from the event feed.

Each committed event of the request's tenant (of one execution with ``?execution=ID``) is sent
as an SSE ``event`` whose data is its CloudEvent; its ``data`` is redacted without
``payloads:read``. The stream follows the feed (docs/feed.md). It starts at the feed's head, or
after a position: ``?after=POSITION`` or the ``Last-Event-ID`` header a reconnecting EventSource
sends. Every message's SSE ``id`` is a position to resume from that loses nothing (an event sharing
a position with ones not yet sent carries the position before them, so a resume may repeat a few
events but never skips one). The first message, ``ready``, carries where the stream starts: a client
that loaded its view before opening refreshes once on it, so nothing committed in between is missed.
A catch-up reads at most ``max_catchup`` events; past that the stream sends ``reset`` and goes on
from the head (the client reloads its view). Comments keep idle connections open. A stream ends
after ``max_seconds`` (the browser's EventSource reconnects, resuming), and a process serves at
most ``max_streams`` at once (503 ``too_many_streams`` beyond), so no request does unbounded work.
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
PAGE = 500  # feed events read per poll


class StreamParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    execution: str | None = Field(None, min_length=1, max_length=200, description="Only this execution's events.")
    after: int | None = Field(
        None, ge=0, description="Resume after this feed position (an SSE id of an earlier stream); default: the head."
    )


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
        max_catchup: int = 10_000,
    ) -> None:
        self.feed = feed
        self.poll = poll
        self.keepalive = keepalive
        self.max_seconds = max_seconds
        self.max_streams = max_streams
        self.max_catchup = max_catchup
        self.open = 0

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", STREAM, self.stream, Permission.EXECUTIONS_READ, "streamFeed",
                "Server-sent events: each event of the tenant (or of one execution) committed from now "
                "on (or after ?after= or Last-Event-ID), as a CloudEvent (data redacted without payloads:read).",
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
            return await self._follow(request, tenant, params.execution, _resume_from(request, params.after))
        finally:
            self.open -= 1

    async def _follow(
        self, request: web.Request, tenant: str, execution: str | None, after: int | None
    ) -> web.StreamResponse:
        head = await self.feed.head()
        position = head if after is None else min(after, head)
        catching_up = after is not None
        read = 0
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        visible = redaction.payloads_visible(request)
        started = last_write = time.monotonic()
        try:
            opened = {"position": position, "catching_up": catching_up}
            await response.write(f"retry: 2000\nevent: ready\nid: {position}\ndata: {json.dumps(opened)}\n\n".encode())
            while time.monotonic() - started < self.max_seconds:
                transport = request.transport
                if transport is None or transport.is_closing():  # the client went away: stop polling
                    return response
                limit = min(PAGE, self.max_catchup - read) if catching_up else PAGE
                page = await self.feed.read_after(position, limit)
                if catching_up:
                    read += len(page.items)
                    if len(page.items) < limit:  # at the head
                        catching_up = False
                    elif read >= self.max_catchup:  # too far behind: start again from the head
                        position, catching_up = await self.feed.head(), False
                        reset = {"position": position, "reason": f"more than {self.max_catchup} events behind"}
                        await response.write(f"event: reset\nid: {position}\ndata: {json.dumps(reset)}\n\n".encode())
                        continue
                resume, group = position, position
                for at, envelope in page.items:
                    if at != group:  # the events before this one's position have all been sent
                        resume, group = group, at
                    if envelope.tenant != tenant or (execution is not None and envelope.subject != execution):
                        continue
                    event = envelope.to_cloudevent()
                    shown = event if visible else redaction.event(event)
                    data = json.dumps(shown, separators=(",", ":"), default=str)
                    await response.write(f"event: event\nid: {resume}\ndata: {data}\n\n".encode())
                    last_write = time.monotonic()
                if page.items:  # where a resume goes on from, past the events of other streams
                    await response.write(f"id: {page.last}\n\n".encode())
                position = page.last
                if not page.items:
                    if time.monotonic() - last_write >= self.keepalive:
                        await response.write(b": keepalive\n\n")
                        last_write = time.monotonic()
                    await asyncio.sleep(self.poll)
        except ConnectionResetError:  # the client went away
            return response
        return response


def _resume_from(request: web.Request, after: int | None) -> int | None:
    """The position to resume after: ``?after=``, else a well-formed ``Last-Event-ID`` (one this
    stream sent), else None (the head). A malformed header is ignored: the stream starts afresh."""
    if after is not None:
        return after
    text = request.headers.get("Last-Event-ID", "").strip()
    return int(text) if text.isdigit() and len(text) <= 20 else None
