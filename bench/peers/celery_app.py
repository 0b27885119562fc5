"""The Celery app of the peer benchmark: one no-op task, chained ten times.

Loaded both by the driver (``bench/peers/celery_peer.py``) and by the worker it spawns as a child
process (``celery -A bench.peers.celery_app worker``). The broker and the queue come from the
environment so that each run uses a queue of its own, deleted afterwards:

- ``BENCH_CELERY_BROKER``: AMQP URL [amqp://guest:guest@127.0.0.1:5672//]
- ``BENCH_CELERY_QUEUE``: the queue (durable, classic) the chain's tasks go to [bench-peers]
- ``BENCH_CELERY_CONFIRM``: ``0`` turns publisher confirms off (to measure what they cost) [1]

Durability settings (stated in docs/performance.md, "Peers"):

- messages are persistent (``task_default_delivery_mode="persistent"``, Celery's default) on a
  durable queue, and every publish waits for RabbitMQ's publisher confirm
  (``broker_transport_options={"confirm_publish": True}``), the worker's publish of the next
  step included, so a step is on the broker before the previous one is acknowledged;
- ``task_acks_late=True``: a task's message is acknowledged after the task returned and the next
  step was published, so a worker crash redelivers it; ``task_reject_on_worker_lost=True`` so a
  killed pool process does the same;
- ``worker_prefetch_multiplier=1``: the worker reserves at most one message per pool slot
  (``--concurrency`` times 1 unacknowledged messages; Celery's recommendation with ``acks_late``);
- results: ``rpc://`` (results travel back as AMQP messages to the caller's reply queue, not
  persisted); only the last step of a chain stores a result, the first nine are sent with
  ``ignore_result=True``: a step's output travels inside the next step's message.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

BROKER = os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench-peers")
CONFIRM = os.environ.get("BENCH_CELERY_CONFIRM", "1") != "0"

app = Celery("bench_peers", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_default_delivery_mode="persistent",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"confirm_publish": CONFIRM},
    result_persistent=False,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_enable_remote_control=False,  # no pidbox queue and exchange left on the broker
    worker_send_task_events=False,
    task_send_sent_event=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench_peers.step")
def step(marks: list[list[float]], index: int) -> list[list[float]]:
    """A no-op step that records when it started and ended (CLOCK_MONOTONIC, machine-wide)."""
    began = time.perf_counter()
    return [*marks, [index, began, time.perf_counter()]]


def ten_steps(steps: int = 10) -> Any:
    """``chain(step.s([], 0), step.s(1), ..., step.s(9))``: each step gets the previous one's marks."""
    from celery import chain

    signatures = [step.s([], 0), *(step.s(index) for index in range(1, steps))]
    for signature in signatures[:-1]:
        signature.set(ignore_result=True)
    return chain(*signatures)
