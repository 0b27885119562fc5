"""``/api/v1/jobs/{id}``: the status and progress of a background job (a bulk redrive), and
``POST .../cancel`` to stop it. Jobs belong to the tenant that started them; another tenant's
job is 404. See ``orchestrator.history.jobs``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orchestrator.api.errors import error_response
from orchestrator.api.requests import TENANT_PARAM, request_tenant
from orchestrator.api.routes import Permission, Route, path_param
from orchestrator.history.jobs import Job, JobFinished, JobNotFound, Jobs, JobsBusy
from orchestrator.runtime import Runtime

JOBS = "/api/v1/jobs"
RETRY_AFTER_SECONDS = 5  # what a 429 for too many running jobs suggests


def job_url(job: Job) -> str:
    return f"{JOBS}/{job.job_id}"


def view(job: Job) -> dict[str, Any]:
    """The job as the API shows it: its view and where to follow it."""
    return {**job.to_dict(), "status_url": job_url(job)}


def job_answer(job: Job, created: bool) -> web.Response:
    """202 with the job's view (``created``: false for the same job already running)."""
    return web.json_response({**view(job), "created": created}, status=202, headers={"Location": job_url(job)})


def busy(exc: JobsBusy) -> web.Response:
    """429 ``too_many_jobs`` with ``Retry-After``."""
    response = error_response(429, "too_many_jobs", str(exc))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class JobsApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def jobs(self) -> Jobs:
        return self.runtime.jobs

    def routes(self) -> list[Route]:
        job_id = path_param("id", "Job id (from the 202 that started it).")
        return [
            Route(
                "GET", JOBS + "/{id}", self.get, Permission.EXECUTIONS_READ, "getJob",
                "A background job's status (running, succeeded, failed, cancelled) and progress; "
                "jobs live in the server's memory (gone after a restart).",
                "200:Job 400 404", (job_id, TENANT_PARAM),
            ),
            Route(
                "POST", JOBS + "/{id}/cancel", self.cancel, Permission.EXECUTIONS_REDRIVE, "cancelJob",
                "Stop a running job (between two of its steps); 409 when it has finished.",
                "200:Job 400 404 409", (job_id, TENANT_PARAM),
            ),
        ]

    def _job(self, request: web.Request) -> Job:
        try:
            return self.jobs.get(request.match_info["id"], request_tenant(request))
        except JobNotFound as exc:
            raise web.HTTPNotFound(reason="Unknown Job", text=str(exc)) from None

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(view(self._job(request)))

    async def cancel(self, request: web.Request) -> web.Response:
        """200 with the cancelled job once it has stopped; 409 when it had already finished."""
        job = self._job(request)
        try:
            await self.jobs.cancel(job.job_id, job.tenant)
        except JobFinished as exc:
            raise web.HTTPConflict(reason="Job Finished", text=str(exc)) from None
        return web.json_response(view(job))
