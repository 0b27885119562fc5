"""Raw limits and orchestrator figures beside them, as part of ``python -m bench``.

``run_figures`` runs, in this order: the raw limits (asyncio queue hop; with ``distributed``
also aiokafka produce/consume and aio-pika publish-with-confirm), the bare aiohttp and webhook
accept rates (``bench.http_accept``), open-loop load (``bench.open_loop``), memory per parked
execution (``bench.parked_memory``), fire lateness and memory of 10,000 schedules beside bare
asyncio sleepers (``bench.schedules``), and with ``distributed`` the open loop on Kafka + Cassandra,
the bare consumer-group failover (``bench.group_failover``) and crash recovery of two workers
(``bench.crash_recovery``).
It returns the Markdown lines and the JSON payload; each module also runs alone
(``python -m bench.<module> --help``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from bench import crash_recovery, group_failover, http_accept, open_loop, parked_memory, raw_limits, schedules

HEADER = ["| figure | measured | raw limit (same run) | ratio | target |", "|---|---|---|---|---|"]


def run_figures(
    *,
    quick: bool,
    distributed: bool,
    synchronous: str = "full",
    hop_us: float | None = None,
    commit_us: float | None = None,
    parked_budget: float | None = None,
    cassandra_inserts: tuple[str, float] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """``cassandra_inserts``: the pipelined Cassandra insert rate of the same run (``bench.distributed``),
    the raw limit beside the Kafka + Cassandra open loop."""
    if distributed:
        logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while new topics get leaders
    raw = asyncio.run(raw_limits.run_raw_limits(quick=quick, distributed=distributed, hop_us=hop_us))
    http = asyncio.run(http_accept.run_http_accept(quick=quick))
    loaded = asyncio.run(open_loop.run_open_loop(quick=quick, synchronous=synchronous))
    parked = asyncio.run(parked_memory.run_parked_memory(quick=quick, budget=parked_budget))
    timed = schedules.run_schedules(quick=quick)
    failover = crash = loaded_distributed = None
    if distributed:
        loaded_distributed = asyncio.run(open_loop.run_open_loop_distributed(quick=quick))
        failover = asyncio.run(group_failover.run_group_failover())
        crash = asyncio.run(crash_recovery.run_crash_recovery(executions=200 if quick else 1000))

    lines = [
        "### Raw limits (same run)",
        "",
        "| raw limit | measured |",
        "|---|---|",
        *raw_limits.raw_rows(raw),
        f"| bare aiohttp `POST` → 202 ({http.concurrency} keep-alive connections; {http.placement}) | "
        f"{http.bare_per_s:,.0f} requests/s (p50 {http.bare_p50_ms:.1f} ms) |",
    ]
    if failover is not None:
        lines.append(group_failover.failover_row(failover))
    lines += [
        "",
        f"### Orchestrator figures beside their raw limits (embedded: SQLite WAL synchronous={synchronous})",
        "",
        *HEADER,
        *http_accept.http_rows(http),
        *open_loop.open_loop_rows(loaded, commit_us),
        *parked_memory.parked_rows(parked),
        *schedules.schedule_rows(timed),
    ]
    if loaded_distributed is not None:
        lines += open_loop.open_loop_rows(loaded_distributed, raw_limit=cassandra_inserts)
    if crash is not None:
        lines += crash_recovery.crash_rows(crash, failover.consumed_s if failover else None)
    payload: dict[str, Any] = {
        "raw_limits": raw_limits.as_dict(raw),
        "http_accept": http_accept.as_dict(http),
        "open_loop": open_loop.as_dict(loaded),
        "parked_memory": parked_memory.as_dict(parked),
        "schedules": schedules.as_dict(timed),
    }
    if loaded_distributed is not None:
        payload["open_loop_distributed"] = open_loop.as_dict(loaded_distributed)
    if failover is not None:
        payload["group_failover"] = asdict(failover)
    if crash is not None:
        payload["crash_recovery"] = asdict(crash)
    return lines, payload
