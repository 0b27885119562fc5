"""Crash recovery on Kafka + Cassandra: SIGKILL one of two workers with executions in flight.

    python -m bench.crash_recovery [--executions 1000] [--json]

What ``tests/integration/test_worker_failover.py`` checks, timed: two ``orchestrator worker``
processes (the 10-step no-op workflow of ``bench.distributed``, 12 partitions, a fresh keyspace
and fresh topics) and this process as the API (``role=api``). Once both workers hold partitions
of both topics (read from their logs), ``executions`` are started at once; when the first ones
have completed two steps, one worker gets SIGKILL. Then, from the histories (event times are the
workers' ``time.time()``, on this machine):

- **all complete**: kill → the last terminal event;
- **stalled executions move again**: kill → the latest "first event after the kill" over the
  executions that were running at the kill (the dead worker's wait for the group to fail over);
- **duplicated step completions**: ``StepSucceeded`` events for a step beyond the first, summed
  over every history (must be 0: exactly-once transitions); sequences must be gap-free and every
  execution ``succeeded``.

Next to it, the raw limit (``bench.group_failover``): a bare aiokafka group failing over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from bench.distributed import drop_keyspace
from orchestrator.core.timefmt import parse_rfc3339
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.builder import Workflow

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 12


@dataclass
class CrashResult:
    executions: int
    running_at_kill: int  # not yet terminal when the SIGKILL went out
    transitions_after_kill: int  # events appended after the kill
    all_complete_s: float  # kill -> last terminal event
    resumed_s: float  # kill -> every execution running at the kill has a new event
    duplicated_step_completions: int
    gap_free: bool
    all_succeeded: bool


def definition_file(folder: Path) -> Path:
    workflow = Workflow("bench-noop")
    for index in range(10):
        workflow.task(f"s{index}", "noop")
    path = folder / "bench-noop.yaml"
    path.write_text(yaml.safe_dump(workflow.to_dict()))
    return path


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "worker"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def holds_both_topics(log: Path, prefix: str) -> bool:
    """The worker's latest assignment of each topic is not empty (its INFO log lines)."""
    latest: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines():
        for topic in (f"{prefix}.commands", f"{prefix}.tasks"):
            if f"{topic}: assigned partitions" in line:
                latest[topic] = line.rsplit("assigned partitions", 1)[1].strip()
    return len(latest) == 2 and all(value not in ("", "[]") for value in latest.values())


async def delete_topics(broker: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=10000)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def run_crash_recovery(
    *, broker: str = "127.0.0.1:9092", cassandra: str = "127.0.0.1:9042", executions: int = 1000
) -> CrashResult:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    host, _, port = cassandra.partition(":")
    event_log = f"cassandra://{cassandra}/{prefix}?migrate=auto"
    transport = (
        f"kafka://{broker}?commands={prefix}.commands&tasks={prefix}.tasks&group={prefix}"
        f"&partitions={PARTITIONS}"
    )
    workers: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        env.update(
            PYTHONPATH=str(REPO),
            ORCHESTRATOR_EVENT_LOG_URL=event_log,
            ORCHESTRATOR_TRANSPORT_URL=transport,
            ORCHESTRATOR_DEFINITIONS=str(definition_file(folder)),
        )
        logs = [folder / "worker-0.log", folder / "worker-1.log"]
        try:
            workers.append(spawn(env, logs[0]))
            await asyncio.sleep(1.0)  # the first one creates the keyspace and the topics
            workers.append(spawn(env, logs[1]))
            api = Settings(event_log_url=event_log, transport_url=f"{transport}&role=api")
            async with Runtime(api) as runtime:
                for _ in range(1200):  # both workers up and holding partitions of both topics
                    for worker, log in zip(workers, logs, strict=True):
                        if worker.poll() is not None:
                            raise RuntimeError(f"a worker exited: {log.read_text()[-3000:]}")
                    if all(holds_both_topics(log, prefix) for log in logs):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError("the workers never shared the partitions")
                starts = await asyncio.gather(
                    *(runtime.start_execution("bench-noop") for _ in range(executions))
                )
                ids = [s.execution_id for s in starts]
                await until_progress(runtime, ids[:5])
                workers[0].send_signal(signal.SIGKILL)
                killed = time.time()
                states = await asyncio.gather(*(runtime.wait(i, timeout=600) for i in ids))
                histories = await asyncio.gather(*(runtime.history(i) for i in ids))
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
                    try:
                        worker.wait(30)
                    except subprocess.TimeoutExpired:
                        worker.kill()
            with contextlib.suppress(Exception):
                await drop_keyspace(host, int(port or 9042), prefix)
            with contextlib.suppress(Exception):
                await delete_topics(broker, prefix)
    duplicated, running, after_kill, last, resumed = 0, 0, 0, killed, 0.0
    gap_free = True
    for history in histories:
        completions = Counter(e.data.get("step") for e in history if e.type == "StepSucceeded")
        duplicated += sum(count - 1 for count in completions.values())
        gap_free &= [e.sequence for e in history] == list(range(1, len(history) + 1))
        times = [parse_rfc3339(e.time) for e in history]
        later = [t for t in times if t > killed]
        after_kill += len(later)
        last = max(last, times[-1])
        if later and later[-1] == times[-1] and len(later) < len(times):  # running at the kill
            running += 1
            resumed = max(resumed, later[0] - killed)
    return CrashResult(
        executions=executions,
        running_at_kill=running,
        transitions_after_kill=after_kill,
        all_complete_s=last - killed,
        resumed_s=resumed,
        duplicated_step_completions=duplicated,
        gap_free=gap_free,
        all_succeeded={s.status for s in states} == {"succeeded"},
    )


async def until_progress(runtime: Runtime, ids: list[str]) -> None:
    """Until one of the first executions has completed two steps (the rest are in flight)."""
    for _ in range(1200):
        for execution_id in ids:
            history = await runtime.history(execution_id)
            if sum(e.type == "StepSucceeded" for e in history) >= 2:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("no progress before the kill")


def crash_rows(r: CrashResult, failover_s: float | None) -> list[str]:
    raw = f"bare consumer group failover {failover_s:.1f} s" if failover_s else "(no raw figure)"
    ratio = f"{r.resumed_s / failover_s:.2f}x" if failover_s else ""
    return [
        f"| crash recovery: SIGKILL 1 of 2 `orchestrator worker`s, {r.executions:,} executions "
        f"({r.running_at_kill:,} running at the kill): stalled executions move again after | "
        f"{r.resumed_s:.1f} s | {raw} | {ratio} | |",
        f"| crash recovery: all complete after the kill ({r.transitions_after_kill:,} transitions left) | "
        f"{r.all_complete_s:.1f} s | | | |",
        f"| crash recovery: duplicated step completions; gap-free, all succeeded | "
        f"{r.duplicated_step_completions}; {'yes' if r.gap_free else 'NO'}, {'yes' if r.all_succeeded else 'NO'} | "
        f"| | 0 |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run_crash_recovery(executions=args.executions))
    print(json.dumps(asdict(result), indent=2) if args.json else "\n".join(crash_rows(result, None)))


if __name__ == "__main__":
    main()
