"""In-process transport (``inprocess://``): commands go straight to the engine, tasks to a worker pool.

Ordering per execution comes from the engine's per-execution lock. Tasks wait in a weighted fair
queue across tenants (``orchestrator.backends.fair_queue``: a tenant flooding the process delays
another tenant's tasks by about one round, not by its whole backlog), drained by ``concurrency``
worker coroutines, created in ``start`` and cancelled in ``stop``:
``inprocess://?concurrency=N``, else the one ``from_url`` is given (the runtime passes the
``worker_concurrency`` setting), else 64. Its depth is reported as
``queue_depth("inprocess.tasks", n)`` after each put and take.

A worker coroutine survives whatever a task raises (the worker retries its answers itself; an
error that still escapes, even a ``CancelledError`` that is not a cancel of the coroutine, is
logged and the coroutine takes the next task). ``problem`` tells the readiness probe when worker
coroutines have ended anyway (stopped, cancelled from outside, or killed by a ``BaseException``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from orchestrator.backends.fair_queue import FairQueue
from orchestrator.core.commands import Command
from orchestrator.instrumentation import NO_INSTRUMENTS, Instruments
from orchestrator.ports import CommandHandler, StepTask, TaskHandler

log = logging.getLogger(__name__)
DEFAULT_CONCURRENCY = 64
QUEUE = "inprocess.tasks"


class InProcessTransport:
    durable = False  # a crash loses the queue: the runtime resumes running executions at start
    instruments: Instruments = NO_INSTRUMENTS  # set by the runtime (orchestrator.instrumentation.attach)

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, *, fair: bool = True) -> None:
        if concurrency < 1:
            raise ValueError(f"in-process transport: concurrency must be >= 1, got {concurrency}")
        self._concurrency = concurrency
        self._queue: FairQueue[StepTask] = FairQueue()  # weighted fair across tenants
        self.fair = fair  # False: one FIFO for every tenant (``?fair=false``)
        self._running = 0  # tasks taken from the queue and not finished
        self._workers: list[asyncio.Task[None]] = []
        self._started = False
        self._on_command: CommandHandler | None = None
        self._on_task: TaskHandler | None = None

    @classmethod
    def from_url(cls, url: str, concurrency: int | None = None) -> InProcessTransport:
        """``?concurrency=N`` in the URL wins over ``concurrency``; ``?fair=false``: one FIFO."""
        query = parse_qs(urlsplit(url).query)
        given = query.get("concurrency")
        if given:
            try:
                concurrency = int(given[0])
            except ValueError:
                raise ValueError(f"concurrency in {url!r} is not an integer") from None
        fair = query.get("fair", ["true"])[-1].lower()
        if fair not in ("true", "false"):
            raise ValueError(f"fair in {url!r} must be true or false")
        return cls(DEFAULT_CONCURRENCY if concurrency is None else concurrency, fair=fair == "true")

    @property
    def concurrency(self) -> int:
        """Tasks run at once (the number of worker coroutines)."""
        return self._concurrency

    async def start(self, on_command: CommandHandler, on_task: TaskHandler) -> None:
        self._on_command, self._on_task = on_command, on_task
        self._started = True
        self._workers = [
            asyncio.create_task(self._work(), name=f"inprocess-worker-{i}") for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        self._started = False
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []

    def shard_of(self, execution_id: str) -> int:
        return 0

    def owned_shards(self) -> set[int] | None:
        return None

    async def submit(self, command: Command) -> None:
        assert self._on_command is not None, "transport not started"
        await self._on_command(command)

    async def dispatch(self, task: StepTask) -> None:
        self._queue.put_nowait(task.tenant if self.fair else "", task)
        self.instruments.queue_depth(QUEUE, self._queue.qsize())

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def set_tenant_weights(self, weights: Mapping[str, float]) -> None:
        """Weights of the fair queue across tenants (1 for a tenant not named)."""
        self._queue.set_weights(weights)

    async def queued_tasks(self) -> list[StepTask]:
        """The step tasks waiting for a worker, for the doctor."""
        return self._queue.items()

    async def drop_tasks(self, execution_ids: set[str]) -> int:
        """Take the queued tasks of ``execution_ids`` out of the queue; how many."""
        dropped = self._queue.remove_if(lambda task: task.execution_id in execution_ids)
        self.instruments.queue_depth(QUEUE, self._queue.qsize())
        return dropped

    def in_flight(self) -> int:
        """Tasks queued or running now."""
        return self._queue.qsize() + self._running

    def consumer_lag(self) -> dict[str, int]:
        return {}  # nothing is consumed from a broker

    @property
    def workers_alive(self) -> int:
        """Worker coroutines running now (``concurrency`` while started, 0 when stopped)."""
        return sum(1 for worker in self._workers if not worker.done())

    def problem(self) -> str | None:
        """Why tasks cannot run (not started, or worker coroutines ended), or None."""
        if not self._started:
            return "the in-process workers are stopped"
        alive = self.workers_alive
        if alive < len(self._workers):
            return f"{len(self._workers) - alive} of {len(self._workers)} in-process workers stopped"
        return None

    async def _work(self) -> None:
        assert self._on_task is not None
        while True:
            task = await self._queue.get()
            self.instruments.queue_depth(QUEUE, self._queue.qsize())
            self._running += 1
            try:
                await self._on_task(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is None or current.cancelling():
                    raise  # stop() cancels this coroutine
                log.error("in-process worker: task %s of %s raised CancelledError", task.attempt_id, task.execution_id)
            except Exception:  # the worker reports its own failures; this one is a bug: log, go on
                log.exception("in-process worker: task %s of %s failed", task.attempt_id, task.execution_id)
            finally:
                self._running -= 1
