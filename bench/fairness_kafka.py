"""Fair scheduling in Kafka mode: a quiet tenant's step latency while another floods the tasks topic.

    python -m bench.fairness --kafka [--quick] [--json]     (needs Kafka on 127.0.0.1:9092)

The same shape as ``bench.fairness``, one layer down: one Kafka worker (``KafkaTransport``,
concurrency 4, a tasks topic of 4 partitions) runs step tasks whose handler sleeps 5 ms (800
steps/s at most). A noisy tenant first dispatches 100 times as many tasks as the quiet one will,
seconds of work queued in Kafka ahead of everything the quiet tenant sends in the same
partitions. While that drains, the quiet tenant dispatches one task every 20 ms. Latency = from
the quiet ``dispatch`` returning (the broker has the record) to the handler done. Reported: alone,
under the flood with the fair order (default), and under the flood in fetch order
(``fair=false``). Each run has its own topics and consumer group, deleted at the end. The
collector runs with the threshold a worker's runtime sets (``orchestrator/collector.py``): the
transport is measured as a worker process runs it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient

from bench.fairness import p99
from orchestrator.backends.kafka.transport import KafkaTransport
from orchestrator.collector import CollectorThreshold
from orchestrator.core.commands import Command
from orchestrator.ports import StepTask
from orchestrator.settings import Settings

STEP_SECONDS = 0.005
QUIET_INTERVAL = 0.02
FLOOD = 100  # noisy tasks per quiet task
BROKER = "127.0.0.1:9092"


@dataclass(frozen=True)
class KafkaFairnessResult:
    quiet_alone_p50_ms: float
    quiet_alone_p99_ms: float
    quiet_flooded_fair_p50_ms: float
    quiet_flooded_fair_p99_ms: float
    quiet_flooded_fifo_p50_ms: float
    quiet_flooded_fifo_p99_ms: float
    noisy_tasks: int
    quiet_tasks: int

    @property
    def fair_ratio(self) -> float:
        return self.quiet_flooded_fair_p99_ms / self.quiet_alone_p99_ms


class Steps:
    """The handler: sleeps ``STEP_SECONDS``; notes each quiet task's latency from its dispatch."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}  # quiet execution id -> when its dispatch returned
        self.latencies: list[float] = []
        self.noisy_done = 0
        self.changed = asyncio.Event()

    async def __call__(self, task: StepTask) -> None:
        await asyncio.sleep(STEP_SECONDS)
        if task.tenant == "quiet":
            sent = self.sent.get(task.execution_id)
            if sent is not None:
                self.latencies.append(time.perf_counter() - sent)
        else:
            self.noisy_done += 1
        self.changed.set()

    async def until(self, done: int, timeout: float = 300.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.latencies) < done:
                self.changed.clear()
                await self.changed.wait()


async def ignore(_: Command) -> None:
    return None


def task(tenant: str, index: int) -> StepTask:
    execution_id = f"{tenant}-{index}"
    return StepTask(execution_id, "wf", "s", 1, f"{execution_id}/s", "noop", {}, None, execution_id, tenant=tenant)


async def delete_topics(prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=[BROKER])
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def measure(quiet: int, flood: bool, fair: bool) -> list[float]:
    prefix = f"bench-fair-{uuid.uuid4().hex[:8]}"
    url = (
        f"kafka://{BROKER}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}"
        f"&partitions=4&concurrency=4&grace=1&fair={str(fair).lower()}"
    )
    steps = Steps()
    collector = CollectorThreshold(Settings.gc_threshold)  # the runtime's default
    collector.apply()
    worker = KafkaTransport.from_url(url)
    await worker.start(ignore, steps)
    try:
        warm = task("quiet", -1)  # the group is joined and the partitions assigned
        steps.sent[warm.execution_id] = time.perf_counter()
        await worker.dispatch(warm)
        await steps.until(1, timeout=60)
        steps.latencies.clear()
        noisy = FLOOD * quiet if flood else 0
        for start in range(0, noisy, 500):  # the backlog, in Kafka before the quiet tenant starts
            await asyncio.gather(*(worker.dispatch(task("noisy", i)) for i in range(start, min(start + 500, noisy))))
        for index in range(quiet):
            item = task("quiet", index)
            await worker.dispatch(item)
            steps.sent[item.execution_id] = time.perf_counter()
            await asyncio.sleep(QUIET_INTERVAL)
        if flood and steps.noisy_done >= noisy:
            raise RuntimeError("the noisy backlog drained before the quiet tenant finished: no overload measured")
        await steps.until(quiet)
    finally:
        await worker.stop()
        await delete_topics(prefix)
        collector.restore()
    return [s * 1000 for s in steps.latencies]


async def run_kafka_fairness(quick: bool = False) -> KafkaFairnessResult:
    quiet = 30 if quick else 100
    alone = await measure(quiet, flood=False, fair=True)
    fair = await measure(quiet, flood=True, fair=True)
    fifo = await measure(quiet, flood=True, fair=False)
    return KafkaFairnessResult(
        quiet_alone_p50_ms=statistics.median(alone),
        quiet_alone_p99_ms=p99(alone),
        quiet_flooded_fair_p50_ms=statistics.median(fair),
        quiet_flooded_fair_p99_ms=p99(fair),
        quiet_flooded_fifo_p50_ms=statistics.median(fifo),
        quiet_flooded_fifo_p99_ms=p99(fifo),
        noisy_tasks=FLOOD * quiet,
        quiet_tasks=quiet,
    )


def kafka_fairness_table(r: KafkaFairnessResult) -> list[str]:
    fifo_ratio = r.quiet_flooded_fifo_p99_ms / r.quiet_alone_p99_ms
    return [
        "### Fair scheduling across tenants, Kafka mode (one worker, concurrency 4, 5 ms steps)",
        "",
        f"A noisy tenant dispatches {r.noisy_tasks:,} step tasks ({FLOOD}x) to a 4-partition tasks topic; "
        f"behind them, a quiet tenant dispatches {r.quiet_tasks}, 20 ms apart. Latency: from the quiet "
        "dispatch acknowledged to its step done.",
        "",
        "| quiet tenant's step latency | p50 | p99 | p99 / alone | target |",
        "|---|---|---|---|---|",
        f"| alone (the raw limit, same run) | {r.quiet_alone_p50_ms:.1f} ms | {r.quiet_alone_p99_ms:.1f} ms | 1.00x | |",
        f"| flooded, weighted fair order | {r.quiet_flooded_fair_p50_ms:.1f} ms | {r.quiet_flooded_fair_p99_ms:.1f} ms "
        f"| {r.fair_ratio:.2f}x | ≤ 2x |",
        f"| flooded, fetch order (`fair=false`) | {r.quiet_flooded_fifo_p50_ms:,.0f} ms | "
        f"{r.quiet_flooded_fifo_p99_ms:,.0f} ms | {fifo_ratio:,.0f}x | |",
    ]
