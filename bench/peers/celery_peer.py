"""Celery on RabbitMQ: a chain of 10 no-op tasks, run by a real ``celery worker`` child process.

The worker is ``celery -A bench.peers.celery_app worker --pool=threads --concurrency=64
--prefetch-multiplier=1 --without-gossip --without-mingle --without-heartbeat`` on a queue of
its own (``bench-peers-<random>``), started for the run, warm-shutdown afterwards (SIGTERM), and
the queue and its exchange are deleted. Durability settings: ``bench/peers/celery_app.py``.

Why a pool of 64 threads with a prefetch multiplier of 1: it gives Celery what our embedded run
has, one process running up to 64 steps at once (``inprocess://?concurrency=64``), each task's
message unacknowledged until it has returned (at most 64 reserved). On the 2 cores of the
benchmark machine it was also Celery's fastest setting in short runs: ``--pool=prefork
--concurrency=2`` (one process per core, Celery's default pool) reached about half its
workflows/s, since with ``acks_late`` and a prefetch of 1 only two steps are then in flight,
each paying its broker round trips (delivery, publish and confirm, ack); other prefork settings
(2-8 processes, prefetch 1-32) landed in between. ``python -m bench.peers --celery-pool prefork
--celery-concurrency 2 --celery-prefetch 1`` measures the others.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.peers.common import STEPS, PeerResult, gaps_us, summarise

ROOT = Path(__file__).resolve().parents[2]
BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def check_broker(broker: str) -> None:
    from kombu import Connection  # type: ignore[attr-defined]

    try:
        with Connection(broker, connect_timeout=5) as connection:
            # A few retries over ~10 s ride out a broker that is restarting.
            connection.ensure_connection(max_retries=5, interval_start=1, interval_step=1, interval_max=3)
    except Exception as error:
        raise SystemExit(
            f"bench.peers: RabbitMQ is not reachable at {broker} ({error}); start it with `scripts/services start rabbitmq`"
        ) from None


def spawn_worker(
    broker: str, queue: str, pool: str, concurrency: int, prefetch: int
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_CELERY_BROKER": broker, "BENCH_CELERY_QUEUE": queue}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.peers.celery_app",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--prefetch-multiplier={prefetch}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=WARNING",
        f"--hostname={queue}@%h",
        "--queues",
        queue,
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_worker(worker: subprocess.Popen[bytes]) -> str:
    """Warm shutdown (SIGTERM: finish the running tasks), then SIGKILL after 30 s. Returns stderr."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
    assert worker.stderr is not None
    return worker.stderr.read().decode(errors="replace")


def delete_queue(broker: str, queue: str) -> None:
    """Delete the run's queue and exchange; a failure is reported, never raised over the run's."""
    from kombu import Connection  # type: ignore[attr-defined]

    try:
        with Connection(broker, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=5, interval_start=1, interval_step=1, interval_max=3)
            channel = connection.channel()
            try:
                channel.queue_delete(queue)
                channel.exchange_delete(queue)
            finally:
                channel.close()
    except Exception as error:
        print(f"bench.peers: could not delete queue {queue} on {broker}: {error}", file=sys.stderr)


def run_celery(
    *,
    sequential: int = 100,
    concurrent: int = 2000,
    broker: str = BROKER,
    pool: str = "threads",
    concurrency: int = 64,
    prefetch: int = 1,
    timeout: float = 600,
) -> PeerResult:
    """Per-step gaps over ``sequential`` chains, one at a time; then ``concurrent`` chains applied
    at once, timed until the caller has every result."""
    import celery

    check_broker(broker)
    queue = f"bench-peers-{uuid.uuid4().hex[:8]}"
    os.environ["BENCH_CELERY_BROKER"] = broker
    os.environ["BENCH_CELERY_QUEUE"] = queue
    from bench.peers import celery_app

    # The app module reads its queue at import: a second run in one process re-points it.
    celery_app.app.conf.update(
        broker_url=broker,
        task_default_queue=queue,
        task_default_exchange=queue,
        task_default_routing_key=queue,
    )
    worker = spawn_worker(broker, queue, pool, concurrency, prefetch)
    notes: list[str] = []
    try:
        # Ready when a first chain (also the warm-up) comes back.
        deadline = time.monotonic() + 120
        while True:
            if worker.poll() is not None:
                raise RuntimeError(
                    f"celery worker exited with {worker.returncode}: {stop_worker(worker)[-2000:]}"
                )
            try:
                celery_app.ten_steps(STEPS).apply_async(queue=queue).get(timeout=5)
                break
            except celery.exceptions.TimeoutError:
                if time.monotonic() > deadline:
                    raise
        for _ in range(3):
            celery_app.ten_steps(STEPS).apply_async(queue=queue).get(timeout=60)
        gaps: list[float] = []
        for _ in range(sequential):
            marks = celery_app.ten_steps(STEPS).apply_async(queue=queue).get(timeout=60)
            gaps += gaps_us(marks)
        began = time.perf_counter()
        results = [celery_app.ten_steps(STEPS).apply_async(queue=queue) for _ in range(concurrent)]
        completed = 0
        for result in results:
            marks = result.get(timeout=max(1.0, began + timeout - time.perf_counter()))
            completed += len(marks) == STEPS
        elapsed = time.perf_counter() - began
        if completed != concurrent:
            notes.append(f"only {completed} of {concurrent} chains completed with {STEPS} steps")
    finally:
        stderr = stop_worker(worker)
        delete_queue(broker, queue)
        celery_app.app.close()
    if worker.returncode not in (0, -signal.SIGTERM):
        notes.append(f"worker exited with {worker.returncode}: {stderr.strip()[-500:]}")
    p50, p99 = summarise(gaps)
    return PeerResult(
        system="Celery + RabbitMQ",
        version=f"celery {celery.__version__}, kombu {__import__('kombu').__version__}, RabbitMQ {rabbitmq_version(broker)}",
        durability=(
            "persistent messages on a durable queue, publisher confirms, acks_late: "
            "a step is on the broker before the previous one is acked (no history)"
        ),
        configuration=(
            f"worker --pool={pool} --concurrency={concurrency}, prefetch multiplier {prefetch}, "
            "result backend rpc:// (last step only)"
        ),
        step_overhead_p50_us=p50,
        step_overhead_p99_us=p99,
        workflows_per_s=completed / elapsed,
        steps_per_s=completed * STEPS / elapsed,
        concurrent_executions=concurrent,
        completed=completed,
        sequential_executions=sequential,
        seconds=elapsed,
        notes=notes,
    )


def rabbitmq_version(broker: str) -> str:
    from kombu import Connection  # type: ignore[attr-defined]

    try:
        with Connection(broker, connect_timeout=5) as connection:
            connection.connect()
            properties = connection.connection.server_properties
            version = properties.get("version", "?")
            return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return "?"
