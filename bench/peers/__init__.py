"""Peers on our workload: Celery on RabbitMQ and DBOS Transact on SQLite, in the same run.

The workload is ``bench/embedded.py``'s: a workflow of 10 no-op steps; per-step overhead is the
gap between one step returning and the next one starting (timestamps taken inside the steps), one
workflow at a time; throughput is N workflows started at once, counted when completed.

- ``bench/peers/celery_peer.py``: a chain of 10 no-op tasks, a real ``celery worker`` child
  process, the local RabbitMQ (``scripts/services start rabbitmq``);
- ``bench/peers/dbos_peer.py``: a DBOS workflow of 10 ``@DBOS.step()`` no-op steps, SQLite
  system database, in a child process.

``run_peers`` returns their figures as ``PeerResult`` (the same figures as ``EmbeddedResult``);
``peers_table`` prints them beside ours. ``python -m bench`` runs them in full mode (``--no-peers``
skips them) and with ``--quick --peers``; ``python -m bench.peers [--quick]`` runs ours and the
peers alone. They need the ``bench`` extra: ``pip install -e ".[bench]"``.

This module imports neither Celery nor DBOS, so that the worker, which imports
``bench.peers.celery_app``, stays light.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.embedded import EmbeddedResult
    from bench.peers.common import PeerResult

PEERS = ("celery", "dbos")
TITLE = "Peers (same 10-step no-op workflow, same machine, same run)"
MISSING = 'bench: the peers need {names} (not installed): pip install -e ".[bench]"'


def require_installed(peers: Sequence[str] = PEERS) -> None:
    """Exit with a one-line message when a peer's package is missing."""
    missing = [name for name in peers if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(MISSING.format(names=" and ".join(missing)))


def check_services(peers: Sequence[str] = PEERS, broker: str | None = None) -> None:
    """Exit with a one-line message when RabbitMQ (for Celery) does not answer."""
    if "celery" in peers:
        from bench.peers.celery_peer import BROKER, check_broker

        check_broker(broker or BROKER)


def run_peers(
    *,
    sequential: int = 100,
    concurrent: int = 2000,
    peers: Sequence[str] = PEERS,
    broker: str | None = None,
    celery_pool: str = "threads",
    celery_concurrency: int = 64,
    celery_prefetch: int = 1,
    dbos_journal: str = "wal",
    dbos_style: str = "async",
) -> list[PeerResult]:
    """Each peer in turn (never two at once) on ``sequential`` + ``concurrent`` workflows."""
    require_installed(peers)
    results: list[PeerResult] = []
    for name in peers:
        if name == "celery":
            from bench.peers.celery_peer import BROKER, run_celery

            results.append(
                run_celery(
                    sequential=sequential,
                    concurrent=concurrent,
                    broker=broker or BROKER,
                    pool=celery_pool,
                    concurrency=celery_concurrency,
                    prefetch=celery_prefetch,
                )
            )
        elif name == "dbos":
            from bench.peers.dbos_peer import run_dbos

            results.append(
                run_dbos(sequential=sequential, concurrent=concurrent, journal=dbos_journal, style=dbos_style)
            )
        else:
            raise ValueError(f"unknown peer {name!r}: one of {', '.join(PEERS)}")
    return results


def _ratio(ours: float, theirs: float) -> float | None:
    return ours / theirs if theirs > 0 else None


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def peers_table(ours: EmbeddedResult, peers: Sequence[PeerResult]) -> list[str]:
    lines = [
        f"### {TITLE}",
        "",
        f"{ours.concurrent_executions:,} workflows started at once for workflows/s; per-step gaps "
        "from workflows run one at a time. Ratios are ours divided by theirs: above 1 we complete "
        "more workflows per second, below 1 our steps follow each other sooner.",
        "",
        "| system | durability | workflows/s | per-step p50 / p99 | ratio ours/theirs, workflows/s | ratio ours/theirs, per-step p50 |",
        "|---|---|---|---|---|---|",
        f"| orchestrator, embedded (this repo) | every transition in the SQLite event log, WAL "
        f"synchronous={ours.synchronous} | {ours.workflows_per_s:,.0f} | "
        f"{_us(ours.step_overhead_p50_us)} / {_us(ours.step_overhead_p99_us)} | 1.00x | 1.00x |",
    ]
    for peer in peers:
        lines.append(
            f"| {peer.system} ({peer.configuration}) | {peer.durability} | {peer.workflows_per_s:,.0f} | "
            f"{_us(peer.step_overhead_p50_us)} / {_us(peer.step_overhead_p99_us)} | "
            f"{_x(_ratio(ours.workflows_per_s, peer.workflows_per_s))} | "
            f"{_x(_ratio(ours.step_overhead_p50_us, peer.step_overhead_p50_us))} |"
        )
    notes = [f"{peer.system}: {note}" for peer in peers for note in peer.notes]
    versions = "; ".join(peer.version for peer in peers)
    if versions:
        lines += ["", f"Versions: {versions}."]
    lines += [f"Note: {note}" for note in notes]
    return lines


def peers_payload(ours: EmbeddedResult, peers: Sequence[PeerResult]) -> list[dict[str, Any]]:
    """The JSON form: each peer's figures and the two ratios."""
    from dataclasses import asdict

    return [
        {
            **asdict(peer),
            "ratio_ours_theirs_workflows_per_s": _ratio(ours.workflows_per_s, peer.workflows_per_s),
            "ratio_ours_theirs_step_overhead_p50": _ratio(
                ours.step_overhead_p50_us, peer.step_overhead_p50_us
            ),
        }
        for peer in peers
    ]


__all__ = [
    "PEERS",
    "TITLE",
    "check_services",
    "peers_payload",
    "peers_table",
    "require_installed",
    "run_peers",
]
