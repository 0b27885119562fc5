"""Run the benchmarks: ``python -m bench [--quick] [--distributed] [--peers|--no-peers] ...``.

Prints a Markdown table and writes JSON + Markdown to bench/results/: every figure beside the raw
limit under it (same run), the peers, the profile-driven fixes before and after (same run), and
the versions and durability settings in force (``bench.environment``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench.embedded import EmbeddedResult, run_embedded
from bench.replay import replay_table, run_replay

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, object]:
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def embedded_table(result: EmbeddedResult) -> list[str]:
    floor = result.floor_us
    return [
        f"### Embedded (SQLite WAL synchronous={result.synchronous} + in-process bus)",
        "",
        "| figure | measured | raw limit (same run) | ratio | target |",
        "|---|---|---|---|---|",
        f"| per-step overhead p50 | {result.step_overhead_p50_us:.0f} µs | floor {floor:.0f} µs "
        f"(commit {result.sqlite_commit_us:.0f} + hop {result.queue_hop_us:.1f}) | "
        f"{result.step_overhead_p50_us / floor:.2f}x | ≤ 3x |",
        f"| per-step overhead p99 | {result.step_overhead_p99_us:.0f} µs | | "
        f"{result.step_overhead_p99_us / floor:.2f}x | |",
        f"| transitions/s ({result.concurrent_executions} concurrent executions) | "
        f"{result.transitions_per_s:,.0f} | 1 commit per transition: {1e6 / result.sqlite_commit_us:,.0f}/s | "
        f"{result.transitions_per_s / (1e6 / result.sqlite_commit_us):.2f}x | ≥ 20,000/s |",
        f"| transitions/s against SQLite's batched ceiling | {result.transitions_per_s:,.0f} | "
        f"500 event-shaped rows per commit: {result.sqlite_batched_rows_per_s:,.0f} rows/s | "
        f"{result.transitions_per_s / result.sqlite_batched_rows_per_s:.2f}x | ≥ 0.5x |",
        f"| workflows/s (10 steps) | {result.workflows_per_s:,.0f} | | | |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--distributed", action="store_true", help="also Kafka + Cassandra (needs scripts/services)"
    )
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Celery and DBOS on the same workload (bench/peers; needs RabbitMQ and the bench extra): "
        "on by default, off by default with --quick",
    )
    parser.add_argument(
        "--parked-budget", type=float, help="seconds for parking executions (default: 30 quick, 600 full)"
    )
    parser.add_argument(
        "--before-after",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the same figures on the commit before the hot-path fixes and on this tree, interleaved "
        "(bench/before_after.py; needs the git history): on by default, off with --quick",
    )
    parser.add_argument("--baseline", help="the commit to compare against (default: bench.before_after.BASELINE)")
    parser.add_argument("--rounds", type=int, help="before/after pairs per figure (default 3)")
    args = parser.parse_args(argv)
    peers_on = args.peers if args.peers is not None else not args.quick
    if peers_on:  # fail now, in one line, not after the embedded run
        from bench.peers import check_services, require_installed

        require_installed()
        check_services()
    sequential, concurrent = (10, 100) if args.quick else (100, 2000)
    embedded = asyncio.run(
        run_embedded(sequential=sequential, concurrent=concurrent, synchronous=args.synchronous)
    )
    lines = [f"## Benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", ""]
    info = machine()
    lines += [f"Machine: {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}", ""]
    lines += embedded_table(embedded)
    peers = None
    if peers_on:  # right after ours: same sizes, as close in time as possible
        from bench.peers import peers_payload, peers_table, run_peers

        peer_results = run_peers(sequential=sequential, concurrent=concurrent)
        lines += ["", *peers_table(embedded, peer_results)]
        peers = peers_payload(embedded, peer_results)
    distributed = None
    if args.distributed:
        from bench.distributed import as_dict, distributed_table, run_distributed, run_two_workers

        distributed = asyncio.run(
            run_distributed(sequential=10 if args.quick else 30, concurrent=100 if args.quick else 400)
        )
        lines += ["", *distributed_table(distributed)]
        two = asyncio.run(run_two_workers(concurrent=100 if args.quick else 400))
        lines.append(
            f"| transitions/s, two `orchestrator worker` processes + an API process | {two:,.0f} | | | ≥ 2,000/s |"
        )
        # Kafka and RabbitMQ triggers beside raw aiokafka / aio-pika consumers (bench/triggers.py).
        from bench.triggers import run_triggers, triggers_table

        trigger_result = run_triggers(args.quick)
        lines += ["", *triggers_table(trigger_result)]
    # Replay and history loading: SQLite always, Cassandra with --distributed.
    replay = asyncio.run(run_replay(quick=args.quick, distributed=args.distributed))
    lines += ["", *replay_table(replay)]
    # Fair scheduling across tenants: a quiet tenant's step latency under a 100x flood.
    from bench.fairness import fairness_table, run_fairness

    fairness = asyncio.run(run_fairness(quick=args.quick))
    lines += ["", *fairness_table(fairness)]
    # Resource limits: transitions/s with limits off and on; a server at 10x its capacity.
    from bench import limits_overhead, overload

    limits_cost = asyncio.run(limits_overhead.run_limits_overhead(args.quick))
    lines += ["", *limits_overhead.limits_table(limits_cost)]
    overloaded = asyncio.run(overload.run_overload(quick=args.quick))
    lines += ["", *overload.overload_table(overloaded)]
    kafka_fairness = None
    if args.distributed:  # the same on a Kafka worker (bench/fairness_kafka.py)
        from bench.fairness_kafka import kafka_fairness_table, run_kafka_fairness

        kafka_fairness = asyncio.run(run_kafka_fairness(quick=args.quick))
        lines += ["", *kafka_fairness_table(kafka_fairness)]
    # Raw limits (HTTP, Kafka, AMQP, group failover) and the figures beside them (bench/figures.py).
    from bench.figures import run_figures

    figure_lines, figures = run_figures(
        quick=args.quick,
        distributed=args.distributed,
        synchronous=args.synchronous,
        hop_us=embedded.queue_hop_us,
        commit_us=embedded.sqlite_commit_us,
        parked_budget=args.parked_budget,
        cassandra_inserts=(
            ("pipelined Cassandra inserts", distributed.cassandra_insert_rate) if distributed is not None else None
        ),
    )
    lines += ["", *figure_lines]
    # Encryption at rest off against on, and the raw AES-GCM cost (bench/encryption.py).
    from bench.encryption import as_dict as encryption_as_dict
    from bench.encryption import encryption_rows, run_encryption

    sealed = asyncio.run(run_encryption(quick=args.quick))
    lines += ["", *encryption_rows(sealed)]
    # Authentication and encryption together, against both off (bench/secured.py).
    from bench.secured import as_dict as secured_as_dict
    from bench.secured import run_secured, secured_rows

    secured = asyncio.run(run_secured(quick=args.quick))
    lines += ["", *secured_rows(secured)]
    name = "quick" if args.quick else "latest"
    payload: dict[str, object] = {"machine": info, "mode": name, "embedded": asdict(embedded)}
    payload["fairness"] = asdict(fairness)
    payload["limits_overhead"] = limits_overhead.as_dict(limits_cost)
    payload["overload"] = overload.as_dict(overloaded)
    if kafka_fairness is not None:
        payload["fairness_kafka"] = asdict(kafka_fairness)
    if distributed is not None:
        payload["distributed"] = {**as_dict(distributed), "two_workers_transitions_per_s": two}
        from bench.triggers import as_dict as triggers_as_dict

        payload["triggers"] = triggers_as_dict(trigger_result)
    if peers is not None:
        payload["peers"] = peers
    payload["replay"] = asdict(replay)
    payload["encryption"] = encryption_as_dict(sealed)
    payload["secured"] = secured_as_dict(secured)
    payload.update(figures)
    before_after_on = args.before_after if args.before_after is not None else not args.quick
    if before_after_on:  # last but one: the other figures are not slowed by it
        from bench import before_after

        compared = before_after.run_before_after(
            quick=args.quick,
            baseline=args.baseline or before_after.BASELINE,
            rounds=args.rounds if args.rounds is not None else (1 if args.quick else 3),
        )
        lines += ["", *before_after.before_after_rows(compared)]
        payload["before_after"] = before_after.as_dict(compared)
    from bench.environment import collect, environment_lines

    environment = collect(synchronous=args.synchronous, distributed=args.distributed, peers=peers_on)
    lines += ["", *environment_lines(environment)]
    payload["environment"] = environment
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(text + "\n")
    (args.out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
