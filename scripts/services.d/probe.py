"""Readiness probes for the local test servers started by scripts/services.

Usage:
    python scripts/services.d/probe.py kafka|cassandra|rabbitmq [--timeout S] [--pid PID]

Each probe talks the server's real protocol, the way the orchestrator does:
    kafka      a metadata request (aiokafka) that lists at least one broker
    cassandra  a CQL session (cassandra-driver) that reads system.local
    rabbitmq   an AMQP connection and channel (aio-pika) as guest/guest

The probe retries until it succeeds or --timeout seconds have passed (0 means a
single attempt). With --pid it gives up early once that process has exited.
Exit status: 0 ready, 1 not ready, 2 the client library is missing.
Hosts and ports come from the same environment variables as scripts/services.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

HOST = os.environ.get("SERVICES_HOST", "127.0.0.1")
ATTEMPT_TIMEOUT = 5.0


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


async def probe_kafka() -> str:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=f"{HOST}:{_port('KAFKA_PORT', 9092)}",
        request_timeout_ms=int(ATTEMPT_TIMEOUT * 1000),
        metadata_max_age_ms=1000,
    )
    try:
        await client.bootstrap()  # sends a MetadataRequest
        brokers = client.cluster.brokers()
        if not brokers:
            raise RuntimeError("metadata response lists no broker")
        return f"{len(brokers)} broker(s), controller {client.cluster.controller}"
    finally:
        await client.close()


def _probe_cassandra_blocking() -> str:
    from cassandra.cluster import Cluster

    cluster = Cluster(
        [HOST],
        port=_port("CASSANDRA_PORT", 9042),
        connect_timeout=ATTEMPT_TIMEOUT,
        control_connection_timeout=ATTEMPT_TIMEOUT,
    )
    try:
        session = cluster.connect()
        row = session.execute(
            "SELECT release_version FROM system.local", timeout=ATTEMPT_TIMEOUT
        ).one()
        return f"Cassandra {row.release_version}"
    finally:
        cluster.shutdown()


async def probe_cassandra() -> str:
    # The driver does blocking I/O on its own threads; keep it off the loop.
    return await asyncio.to_thread(_probe_cassandra_blocking)


async def probe_rabbitmq() -> str:
    import aio_pika

    url = os.environ.get(
        "RABBITMQ_URL", f"amqp://guest:guest@{HOST}:{_port('RABBITMQ_PORT', 5672)}/"
    )
    connection = await aio_pika.connect(url, timeout=ATTEMPT_TIMEOUT)
    try:
        channel = await connection.channel()
        await channel.close()
        props = connection.transport.connection.server_properties  # type: ignore[union-attr]
        version = props.get("version", b"?")
        if isinstance(version, bytes):
            version = version.decode()
        return f"RabbitMQ {version}"
    finally:
        await connection.close()


PROBES = {"kafka": probe_kafka, "cassandra": probe_cassandra, "rabbitmq": probe_rabbitmq}
MODULES = {"kafka": "aiokafka", "cassandra": "cassandra", "rabbitmq": "aio_pika"}


def _alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie (an exited child not yet reaped)."""
    if pid is None:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


async def run(name: str, timeout: float, pid: int | None) -> int:
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        try:
            detail = await asyncio.wait_for(PROBES[name](), ATTEMPT_TIMEOUT * 2)
        except Exception as exc:  # any failure just means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}".strip()
        else:
            print(f"{name}: ready ({detail})")
            return 0
        if not _alive(pid):
            print(f"{name}: process {pid} exited; last error: {last_error}", file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            print(f"{name}: not ready after {timeout:g}s; last error: {last_error}", file=sys.stderr)
            return 1
        await asyncio.sleep(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(PROBES))
    parser.add_argument("--timeout", type=float, default=0.0,
                        help="keep retrying for this many seconds (default: one attempt)")
    parser.add_argument("--pid", type=int, help="stop waiting once this process has exited")
    args = parser.parse_args()

    try:
        __import__(MODULES[args.server])
    except ImportError as exc:
        print(f"{args.server}: client library missing ({exc}); "
              "pip install aiokafka cassandra-driver aio-pika", file=sys.stderr)
        return 2

    # The client libraries log every refused connection while a server boots.
    logging.basicConfig(level=logging.CRITICAL)
    return asyncio.run(run(args.server, args.timeout, args.pid))


if __name__ == "__main__":
    sys.exit(main())
