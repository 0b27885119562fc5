"""Kafka and RabbitMQ triggers: sustained start rate and trigger-to-first-step latency, each
beside the raw client doing the same consume in the same run.

    python -m bench.triggers [--quick] [--json] [--concurrency N] [--prefetch N] [--profile]

Needs Kafka on 127.0.0.1:9092 and RabbitMQ on amqp://guest:guest@127.0.0.1:5672/
(``scripts/services start``). Every part uses topics, queues and consumer groups of its own
(``bench-trig-<run>-...``), deleted at the end.

Parts, in this order:

- **raw aiokafka consume**: N JSON records (~200 bytes) are produced to a fresh 4-partition topic
  first; then a plain ``AIOKafkaConsumer`` in a consumer group (subscribed, ``read_committed``,
  manual commit awaited after every ``getmany`` batch, as the trigger commits) reads them all.
  Clock: first batch in hand -> all N read.
- **raw Kafka latency**: the same consumer on another fresh topic while a producer (acks=all,
  idempotent) sends ``LATENCY_RATE`` records/s, each carrying its send time: send -> in hand.
- **Kafka trigger rate**: the same N records on a fresh topic, consumed by ``KafkaTriggerSource``
  for a workflow ``{task noop} -> succeed`` with an input schema, on an embedded ``Runtime``
  (SQLite file, ``synchronous=full``, in-process transport). Clock: first record handed to
  ``Router.accept`` -> N-th ``accept`` returned ``started`` (the start is durable then; the
  source's ``stats.started`` counts the same thing): starts/s. The no-op steps of the started
  executions run meanwhile, as they would in production; the same clock stopped when the N-th
  first step began gives "through their first step"/s. The two differ only when the starts outrun
  the steps (a backlog builds; ``Rate.behind`` says how many first steps had not begun when the
  last start was durable), so the second is the sustainable rate. The count of executions is
  checked against the event log after.
- **Kafka trigger latency**: as the raw latency, through the trigger: send -> the first step's
  connector is invoked (a no-op connector that reads the send time from its args).
- **raw aio-pika consume-and-ack**: N persistent messages published (with confirms) to a fresh
  durable queue; then one channel with ``prefetch`` (32, the trigger's default) whose callback
  acks each delivery. Clock: first delivery -> N-th ack sent.
- **raw RabbitMQ latency**, **RabbitMQ trigger rate** and **latency** with ``AmqpTriggerSource``,
  the same way (messages carry an explicit ``message_id``).
- **direct starts**: ``Runtime.start_execution`` called by as many coroutines as the source keeps
  in flight (Kafka ``concurrency`` 64, AMQP ``prefetch`` 32), same workflow and inputs, no broker:
  what the runtime alone allows the trigger.

Each trigger part runs on a fresh runtime and SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import pstats
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from bench.trigger_parts import (
    LATENCY_RATE,
    PARTITIONS,
    AmqpParts,
    KafkaParts,
    Rate,
    direct_starts,
    ms,
)

TARGET = 0.5  # trigger rate / raw consume rate

@dataclass
class TriggerResult:
    mode: str
    messages: int  # N per rate part
    latency_samples: int
    latency_rate: float  # messages/s sent in the latency parts
    partitions: int
    kafka_concurrency: int  # records in flight per Kafka source
    amqp_prefetch: int
    kafka_raw_per_s: float = 0.0
    kafka_trigger: Rate | None = None
    kafka_direct: Rate | None = None  # start_execution alone, kafka_concurrency callers
    kafka_raw_latency_p50_ms: float = 0.0
    kafka_raw_latency_p99_ms: float = 0.0
    kafka_latency_p50_ms: float = 0.0
    kafka_latency_p99_ms: float = 0.0
    amqp_raw_per_s: float = 0.0
    amqp_trigger: Rate | None = None
    amqp_direct: Rate | None = None  # start_execution alone, amqp_prefetch callers
    amqp_raw_latency_p50_ms: float = 0.0
    amqp_raw_latency_p99_ms: float = 0.0
    amqp_latency_p50_ms: float = 0.0
    amqp_latency_p99_ms: float = 0.0

    @property
    def kafka_ratio(self) -> float:
        """Trigger starts/s over the raw consume rate (the target: >= 0.5)."""
        assert self.kafka_trigger is not None
        return self.kafka_trigger.starts_per_s / self.kafka_raw_per_s

    @property
    def amqp_ratio(self) -> float:
        assert self.amqp_trigger is not None
        return self.amqp_trigger.starts_per_s / self.amqp_raw_per_s


# -- the run --------------------------------------------------------------------------------------


async def run_triggers_async(
    quick: bool, *, concurrency: int = 64, prefetch: int = 32, profile: cProfile.Profile | None = None
) -> TriggerResult:
    count = 500 if quick else 20_000
    samples = 50 if quick else 500
    run = uuid.uuid4().hex[:8]
    result = TriggerResult(
        mode="quick" if quick else "full",
        messages=count,
        latency_samples=samples,
        latency_rate=LATENCY_RATE,
        partitions=PARTITIONS,
        kafka_concurrency=concurrency,
        amqp_prefetch=prefetch,
    )
    kafka, amqp = KafkaParts(run), AmqpParts(run)
    try:
        result.kafka_raw_per_s = await kafka.raw_rate(count)
        result.kafka_raw_latency_p50_ms, result.kafka_raw_latency_p99_ms = ms(
            await kafka.raw_latency(samples, LATENCY_RATE)
        )
        result.kafka_trigger, result.kafka_concurrency = await kafka.trigger_rate(count, concurrency, profile)
        result.kafka_latency_p50_ms, result.kafka_latency_p99_ms = ms(
            await kafka.trigger_latency(samples, LATENCY_RATE, concurrency)
        )
        result.amqp_raw_per_s = await amqp.raw_rate(count, prefetch)
        result.amqp_raw_latency_p50_ms, result.amqp_raw_latency_p99_ms = ms(
            await amqp.raw_latency(samples, LATENCY_RATE, prefetch)
        )
        result.amqp_trigger = await amqp.trigger_rate(count, prefetch)
        result.amqp_latency_p50_ms, result.amqp_latency_p99_ms = ms(
            await amqp.trigger_latency(samples, LATENCY_RATE, prefetch)
        )
        result.kafka_direct = await direct_starts(count, result.kafka_concurrency)
        result.amqp_direct = await direct_starts(count, prefetch)
    finally:
        try:
            await kafka.cleanup()
        finally:
            await amqp.cleanup()
    return result


def run_triggers(quick: bool, *, concurrency: int = 64, prefetch: int = 32) -> TriggerResult:
    """The whole trigger benchmark (Kafka and RabbitMQ must be up)."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while new topics get leaders
    return asyncio.run(run_triggers_async(quick, concurrency=concurrency, prefetch=prefetch))


def _verdict(ratio: float) -> str:
    return "**met**" if ratio >= TARGET else "**not met**"


def _rate_rows(
    broker: str, filled: str, trigger: Rate, raw_text: str, raw: float, direct: Rate, callers: str
) -> list[str]:
    ratio = trigger.starts_per_s / raw
    return [
        f"| {broker} trigger: messages → durable starts ({filled}) | {trigger.starts_per_s:,.0f} starts/s "
        f"(through their first step: {trigger.steps_per_s:,.0f}/s) | {raw_text}: {raw:,.0f} msgs/s | "
        f"{ratio:.3f}x | ≥ {TARGET}x: {_verdict(ratio)} |",
        f"| `start_execution` alone, {callers} callers, no broker (what the runtime allows) | "
        f"{direct.starts_per_s:,.0f} starts/s (through their first step: {direct.steps_per_s:,.0f}/s) | | "
        f"trigger / direct: {trigger.starts_per_s / direct.starts_per_s:.2f}x | |",
    ]


def _latency_row(
    broker: str, lat: str, p50: float, p99: float, raw_text: str, raw50: float, raw99: float
) -> str:
    return (
        f"| {broker} trigger-to-first-step latency p50 / p99 ({lat}) | {p50:.1f} / {p99:.1f} ms | "
        f"{raw_text}: {raw50:.1f} / {raw99:.1f} ms | +{p50 - raw50:.1f} ms at p50 | |"
    )


def triggers_table(r: TriggerResult) -> list[str]:
    assert r.kafka_trigger and r.kafka_direct and r.amqp_trigger and r.amqp_direct
    n = f"{r.messages:,}"
    lat = f"{r.latency_samples} messages at {r.latency_rate:.0f}/s"
    return [
        f"### Triggers (embedded runtime: SQLite synchronous=full + in-process bus; {r.partitions} partitions, "
        f"Kafka concurrency {r.kafka_concurrency}, AMQP prefetch {r.amqp_prefetch})",
        "",
        "| figure | measured | raw limit (same run) | ratio | target |",
        "|---|---|---|---|---|",
        *_rate_rows(
            "Kafka",
            f"{n} pre-produced",
            r.kafka_trigger,
            "aiokafka group consumer, commit per batch",
            r.kafka_raw_per_s,
            r.kafka_direct,
            str(r.kafka_concurrency),
        ),
        _latency_row(
            "Kafka",
            lat,
            r.kafka_latency_p50_ms,
            r.kafka_latency_p99_ms,
            "produce → raw consumer",
            r.kafka_raw_latency_p50_ms,
            r.kafka_raw_latency_p99_ms,
        ),
        *_rate_rows(
            "RabbitMQ",
            f"{n} pre-published",
            r.amqp_trigger,
            f"aio-pika consume + ack, prefetch {r.amqp_prefetch}",
            r.amqp_raw_per_s,
            r.amqp_direct,
            str(r.amqp_prefetch),
        ),
        _latency_row(
            "RabbitMQ",
            lat,
            r.amqp_latency_p50_ms,
            r.amqp_latency_p99_ms,
            "publish → raw consumer",
            r.amqp_raw_latency_p50_ms,
            r.amqp_raw_latency_p99_ms,
        ),
    ]


def as_dict(r: TriggerResult) -> dict[str, Any]:
    return {**asdict(r), "kafka_ratio": r.kafka_ratio, "amqp_ratio": r.amqp_ratio}


def profile_kafka(quick: bool, concurrency: int, top: int = 30) -> str:
    """cProfile of the event-loop thread during the Kafka trigger rate part (the SQLite writer
    thread is not in it: use py-spy for that)."""
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    profile = cProfile.Profile()

    async def only_kafka() -> Rate:
        kafka = KafkaParts(uuid.uuid4().hex[:8])
        try:
            rate, _ = await kafka.trigger_rate(500 if quick else 20_000, concurrency, profile)
            return rate
        finally:
            await kafka.cleanup()

    rate = asyncio.run(only_kafka())
    out = io.StringIO()
    out.write(f"Kafka trigger under cProfile: {rate.starts_per_s:,.0f} starts/s\n")
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triggers", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 messages and 50 latency samples")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--concurrency", type=int, default=64, help="Kafka source concurrency (64)")
    parser.add_argument("--prefetch", type=int, default=32, help="AMQP trigger prefetch (32)")
    parser.add_argument("--profile", action="store_true", help="cProfile the Kafka trigger rate part only")
    args = parser.parse_args(argv)
    if args.profile:
        print(profile_kafka(args.quick, args.concurrency))
        return 0
    result = run_triggers(args.quick, concurrency=args.concurrency, prefetch=args.prefetch)
    print(json.dumps(as_dict(result), indent=2) if args.json else "\n".join(triggers_table(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
