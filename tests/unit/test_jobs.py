"""orchestrator.history.jobs: jobs run as tasks, report progress, end in one status, are bounded
in number, and stop with their owner."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator.history.jobs import JobFinished, JobNotFound, Jobs, JobsBusy


class Steps:
    """Work that takes ``count`` steps, each waiting for the test to release it (or failing)."""

    def __init__(self, count: int = 3, fail_at: int | None = None) -> None:
        self.count, self.fail_at, self.done = count, fail_at, 0
        self.gate = asyncio.Event()

    async def run(self) -> None:
        for index in range(self.count):
            await self.gate.wait()
            if index == self.fail_at:
                raise OSError("disk full")
            self.done += 1

    def progress(self) -> dict[str, Any]:
        return {"progress": {"total": self.count, "done": self.done}}


@pytest.fixture
async def jobs() -> Any:
    owned = Jobs(clock=lambda: 1_700_000_000.0, max_running=2, max_kept=2)
    await owned.start()
    yield owned
    await owned.stop()


async def settle(*tasks: Any) -> None:
    await asyncio.wait({task for task in tasks if task is not None})


async def test_a_job_runs_reports_progress_and_succeeds(jobs: Jobs) -> None:
    work = Steps()
    job, created = jobs.submit("redrive", "default", "k1", work)
    assert created and job.status == "running" and job.to_dict()["progress"] == {"total": 3, "done": 0}
    work.gate.set()
    await settle(job.task)
    view = job.to_dict()
    assert view["status"] == "succeeded" and view["progress"]["done"] == 3
    assert view["created_at"] == view["finished_at"] == "2023-11-14T22:13:20.000000Z"
    assert jobs.get(job.job_id, "default") is job


async def test_a_failing_job_records_why_and_the_owner_goes_on(jobs: Jobs) -> None:
    work = Steps(fail_at=1)
    work.gate.set()
    job, _ = jobs.submit("redrive", "default", "k", work)
    await settle(job.task)
    assert job.status == "failed" and job.error == "OSError: disk full" and work.done == 1


async def test_the_same_key_while_running_is_the_same_job_and_the_number_running_is_bounded(
    jobs: Jobs,
) -> None:
    first, _ = jobs.submit("redrive", "default", "k1", Steps())
    again, created = jobs.submit("redrive", "default", "k1", Steps())
    assert again is first and not created
    other_tenant, created = jobs.submit("redrive", "acme", "k1", Steps())
    assert created and other_tenant is not first
    with pytest.raises(JobsBusy):
        jobs.submit("redrive", "default", "k2", Steps())
    with pytest.raises(JobNotFound):
        jobs.get(first.job_id, "acme")  # another tenant's job is unknown


async def test_cancel_stops_a_job_between_steps_and_a_finished_job_cannot_be_cancelled(jobs: Jobs) -> None:
    work = Steps()
    job, _ = jobs.submit("redrive", "default", "k", work)
    await asyncio.sleep(0)
    cancelled = await jobs.cancel(job.job_id, "default")
    assert cancelled.status == "cancelled" and job.task is not None and job.task.done() and work.done == 0
    with pytest.raises(JobFinished):
        await jobs.cancel(job.job_id, "default")


async def test_only_the_most_recent_finished_jobs_are_kept(jobs: Jobs) -> None:
    finished = []
    for key in "abc":
        work = Steps(count=0)
        job, _ = jobs.submit("redrive", "default", key, work)
        await settle(job.task)
        finished.append(job)
    jobs.submit("redrive", "default", "d", Steps())  # keeping is checked when a job is submitted
    kept = [job.key for job in jobs.jobs("default") if job.finished]
    assert kept == ["b", "c"]
    with pytest.raises(JobNotFound):
        jobs.get(finished[0].job_id, "default")


async def test_stop_cancels_running_jobs_and_refuses_new_ones() -> None:
    jobs = Jobs(clock=lambda: 0.0)
    with pytest.raises(RuntimeError, match="not started"):
        jobs.submit("redrive", "default", "k", Steps())
    await jobs.start()
    job, _ = jobs.submit("redrive", "default", "k", Steps())
    await jobs.stop()
    assert job.status == "cancelled" and job.task is not None and job.task.done()
    with pytest.raises(RuntimeError):
        jobs.submit("redrive", "default", "k2", Steps())
