"""Background jobs: long maintenance work (a bulk redrive) runs as a task the runtime owns, never
inside the request that asked for it.

``Jobs.submit`` starts a job's work as an asyncio task and returns at once; the job's view shows
its status (``running``, ``succeeded``, ``failed``, ``cancelled``) and the work's progress counts;
``Jobs.cancel`` stops it at its next await. ``Runtime`` starts and stops ``Jobs`` in its
``AsyncExitStack``, so stopping the runtime cancels what still runs (no thread, no orphan task).

Jobs live in the memory of the process that runs them: a job stops with its process, and its view
is gone after a restart. Work that must survive that is idempotent instead: submitting the same
request again (the same key) redoes only what is missing (a bulk redrive's batch key makes each
redrive at most once). While a job with the same (tenant, kind, key) runs, submitting it again
answers that job. Bounds: at most ``max_running`` jobs run at once (``JobsBusy``: the edge answers
429), and the ``max_kept`` most recent finished ones are kept for their views.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from orchestrator.core.timefmt import rfc3339

log = logging.getLogger(__name__)
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
MAX_RUNNING = 8
MAX_KEPT = 100


class JobNotFound(LookupError):
    """No job with that id in the caller's tenant (or it finished long ago and was dropped)."""


class JobsBusy(RuntimeError):
    """As many jobs as allowed are running; retry later."""


class JobFinished(ValueError):
    """The job has already finished: there is nothing to cancel."""


class Work(Protocol):
    """What a job runs: ``run()`` once, ``progress()`` at any time (JSON-ready counts)."""

    async def run(self) -> None: ...

    def progress(self) -> dict[str, Any]: ...


@dataclass(slots=True, eq=False)
class Job:
    job_id: str
    kind: str
    tenant: str
    key: str
    work: Work = field(repr=False)
    created_at: str
    status: str = RUNNING
    finished_at: str | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    def to_dict(self) -> dict[str, Any]:
        """The work's progress, then who the job is and how it stands."""
        return {
            **self.work.progress(),
            "job_id": self.job_id,
            "kind": self.kind,
            "key": self.key,
            "status": self.status,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "error": self.error,
        }


class Jobs:
    """The jobs of one runtime; ``start()`` before ``submit``, ``stop()`` cancels the running ones."""

    def __init__(
        self, clock: Callable[[], float], *, max_running: int = MAX_RUNNING, max_kept: int = MAX_KEPT
    ) -> None:
        self.clock = clock
        self.max_running = max_running
        self.max_kept = max_kept
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # oldest first
        self._open = False

    async def start(self) -> None:
        self._open = True

    async def stop(self) -> None:
        """Cancel every running job and wait for it to end."""
        self._open = False
        running = [job.task for job in self._jobs.values() if job.task is not None and not job.task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)

    def submit(self, kind: str, tenant: str, key: str, work: Work) -> tuple[Job, bool]:
        """Start ``work`` as a job; (job, True). While a job of the same tenant, kind and key
        runs: (that job, False), and ``work`` is not run. JobsBusy when too many run."""
        if not self._open:
            raise RuntimeError("jobs are not started (start the runtime first)")
        running = [job for job in self._jobs.values() if not job.finished]
        for job in running:
            if (job.tenant, job.kind, job.key) == (tenant, kind, key):
                return job, False
        if len(running) >= self.max_running:
            raise JobsBusy(f"{len(running)} jobs are running (at most {self.max_running}); retry later")
        job = Job(str(uuid.uuid4()), kind, tenant, key, work, rfc3339(self.clock()))
        job.task = asyncio.create_task(self._run(job), name=f"job-{kind}-{job.job_id}")
        job.task.add_done_callback(lambda _: self._finish(job, CANCELLED))  # cancelled before it ran
        self._jobs[job.job_id] = job
        self._forget_old()
        return job, True

    def get(self, job_id: str, tenant: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.tenant != tenant:
            raise JobNotFound(f"no job {job_id}")
        return job

    async def cancel(self, job_id: str, tenant: str) -> Job:
        """Cancel a running job and wait until it has stopped; JobFinished when it had ended."""
        job = self.get(job_id, tenant)
        if job.finished or job.task is None:
            raise JobFinished(f"job {job_id} has already {job.status}")
        job.task.cancel()
        await asyncio.wait({job.task})
        return job

    def jobs(self, tenant: str) -> list[Job]:
        """The tenant's jobs, oldest first."""
        return [job for job in self._jobs.values() if job.tenant == tenant]

    async def _run(self, job: Job) -> None:
        try:
            await job.work.run()
        except asyncio.CancelledError:
            self._finish(job, CANCELLED)
            raise
        except Exception as exc:  # the job fails; the process goes on
            log.warning("job %s (%s) failed: %s", job.job_id, job.kind, exc, exc_info=True)
            self._finish(job, FAILED, f"{type(exc).__name__}: {exc}")
        else:
            self._finish(job, SUCCEEDED)

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        if not job.finished:  # the first outcome stays
            job.status, job.error, job.finished_at = status, error, rfc3339(self.clock())

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(len(finished) - self.max_kept, 0)]:
            del self._jobs[job_id]
