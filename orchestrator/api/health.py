"""Liveness (``/healthz``) and readiness (``/readyz``) probes."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from orchestrator.api.routes import Route
from orchestrator.runtime import Runtime

log = logging.getLogger(__name__)
PROBE_ID = "readyz-probe"  # an execution id that never exists: a cheap point read


class HealthApi:
    """``/healthz``: the process answers. ``/readyz``: the runtime runs (with its in-process
    workers, timer loop and retries), its recent appends did not all fail, its event log answers.
    Each fact recovers on its own: workers are not restarted, but appends that succeed again (or
    30 s without a failed one) and a probe read that answers make the process ready again."""

    def __init__(self, runtime: Runtime, *, timeout: float = 2.0) -> None:
        self.runtime = runtime
        self.timeout = timeout

    def routes(self) -> list[Route]:
        """Public probes."""
        return [
            Route("GET", "/healthz", self.healthz, None, "healthz", "The process is alive.", "200:Health"),
            Route(
                "GET", "/readyz", self.readyz, None, "readyz",
                "The runtime and its workers run; its event log takes appends and answers.",
                "200:Health 503:Health",
            ),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        reason = await self.not_ready_reason()
        if reason is not None:
            return web.json_response({"status": "unavailable", "reason": reason}, status=503)
        return web.json_response({"status": "ok"})

    async def not_ready_reason(self) -> str | None:
        """Why the process cannot serve traffic, or None when it can."""
        problem = self.runtime.problem()
        if problem is not None:
            return problem
        try:
            async with asyncio.timeout(self.timeout):
                await self.runtime.log.summary(PROBE_ID)
        except TimeoutError:
            return f"the event log did not answer within {self.timeout:g}s"
        except Exception as exc:
            log.warning("readiness: the event log failed: %r", exc)
            return f"the event log failed ({type(exc).__name__}); see the server log"
        return None
