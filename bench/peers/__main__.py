"""``python -m bench.peers [--quick]``: ours (embedded) and the peers on the same workload, one
after the other, and the Markdown table (``--json`` for JSON instead).

``--quick`` uses the sizes of ``python -m bench --quick`` (10 workflows one at a time, 100 at
once) and takes about 20 s; the default uses those of the full run (100 and 2,000). Needs the
local RabbitMQ (``scripts/services start rabbitmq``) and ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from bench.peers import PEERS, check_services, peers_payload, peers_table, require_installed, run_peers

QUICK = (10, 100)
FULL = (100, 2000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]} + {QUICK[1]} workflows, ~20 s")
    parser.add_argument("--sequential", type=int, help="workflows run one at a time, for per-step gaps")
    parser.add_argument("--concurrent", type=int, help="workflows started at once, for workflows/s")
    parser.add_argument("--only", choices=PEERS, action="append", help="one peer (repeatable)")
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"], help="ours")
    parser.add_argument("--broker", default=None, help="AMQP URL for Celery [local RabbitMQ]")
    parser.add_argument("--celery-pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument("--celery-concurrency", type=int, default=64)
    parser.add_argument("--celery-prefetch", type=int, default=1, help="worker_prefetch_multiplier")
    parser.add_argument("--dbos-journal", default="wal", choices=["wal", "delete"])
    parser.add_argument("--dbos-style", default="async", choices=["async", "sync"])
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    peers = tuple(args.only or PEERS)
    require_installed(peers)
    check_services(peers, args.broker)
    sequential, concurrent = QUICK if args.quick else FULL
    sequential = args.sequential or sequential
    concurrent = args.concurrent or concurrent

    from bench.embedded import run_embedded

    ours = asyncio.run(
        run_embedded(sequential=sequential, concurrent=concurrent, synchronous=args.synchronous)
    )
    results = run_peers(
        sequential=sequential,
        concurrent=concurrent,
        peers=peers,
        broker=args.broker,
        celery_pool=args.celery_pool,
        celery_concurrency=args.celery_concurrency,
        celery_prefetch=args.celery_prefetch,
        dbos_journal=args.dbos_journal,
        dbos_style=args.dbos_style,
    )
    if args.json:
        payload = {"embedded": asdict(ours), "peers": peers_payload(ours, results)}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        print("\n".join(peers_table(ours, results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
