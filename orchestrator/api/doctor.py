"""``GET /api/v1/doctor`` finds what finished executions still hold; ``POST`` releases it.

Also the servers' periodic check (``ORCHESTRATOR_DOCTOR_INTERVAL``), which only logs what it finds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from orchestrator.api.routes import Permission, Route
from orchestrator.limits.doctor import Check, Report, checks_for, count_report, examine, log_status, patrol
from orchestrator.runtime import Runtime

log = logging.getLogger(__name__)


def runtime_checks(runtime: Runtime) -> list[Check]:
    """The checks this process's backends support (slots, timers, waits, queued tasks, parked commands)."""
    return checks_for(runtime.timers, runtime.waits, runtime.transport, runtime.dead_letters, runtime.admission)


async def run_doctor(runtime: Runtime, *, fix: bool = False) -> Report:
    report = await examine(runtime_checks(runtime), log_status(runtime.log), fix=fix)
    count_report(runtime.instruments, report)
    return report


def log_report(report: Report) -> None:
    if report.leaks:
        found = report.to_dict()["found"]
        log.warning("doctor: held for finished executions: %s (POST /api/v1/doctor releases them)", found)


class DoctorApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", "/api/v1/doctor", self.report, Permission.DOCTOR_RUN, "runDoctor",
                "Concurrency slots, timers, waits, queued tasks and parked commands held for "
                "executions that finished or do not exist.",
                "200:DoctorReport",
            ),
            Route(
                "POST", "/api/v1/doctor", self.fix, Permission.DOCTOR_RUN, "fixDoctor",
                "Find the leaks as GET does and release them (free the slots, cancel the timers, "
                "remove the waits, drop the queued tasks; parked commands are reported only).",
                "200:DoctorReport",
            ),
        ]  # fmt: skip

    async def report(self, request: web.Request) -> web.Response:
        return web.json_response((await run_doctor(self.runtime)).to_dict())

    async def fix(self, request: web.Request) -> web.Response:
        return web.json_response((await run_doctor(self.runtime, fix=True)).to_dict())


def doctor_lifecycle(runtime: Runtime, interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running the periodic check while the server runs."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        task = None
        if interval > 0:
            checks = lambda: runtime_checks(runtime)  # noqa: E731 - read the backends each pass

            def found(report: Report) -> None:
                count_report(runtime.instruments, report)
                log_report(report)

            task = asyncio.create_task(patrol(checks, log_status(runtime.log), interval, found), name="doctor")
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifecycle
