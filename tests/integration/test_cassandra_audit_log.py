"""The Cassandra audit log passes the AuditLog contract against a real Cassandra; appenders in two
processes keep one chain; ``verify`` finds a row changed or deleted with cqlsh-level access."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from cassandra.cluster import Session

from orchestrator.audit.record import Resource
from orchestrator.audit.trail import AuditTrail
from orchestrator.audit.verify import verify_chain
from orchestrator.backends.cassandra.audit import BUCKET, CHAIN, CassandraAuditLog
from orchestrator.ports import AuditLog
from tests.contracts.audit_log import AuditLogContract, entry
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration

APPENDER = """
import asyncio, sys
from orchestrator.audit.record import Actor, Resource
from orchestrator.audit.trail import AuditTrail
from orchestrator.backends.cassandra.audit import CassandraAuditLog

async def main(url, who, count):
    async with AuditTrail(CassandraAuditLog.from_url(url)) as trail:
        for i in range(count):
            await trail.record("executions:cancel", actor=Actor(who, "key"), resource=Resource("executions", str(i)))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def open_log(url: str) -> CassandraAuditLog:
    log = CassandraAuditLog.from_url(url)
    await log.start()
    return log


class TestCassandraAuditLog(AuditLogContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_log(self, tmp_path: Path) -> AuditLog:
        await self.keyspace.empty_once(tmp_path)
        return await open_log(self.keyspace.url)

    async def test_the_chain_crosses_buckets(self, tmp_path: Path) -> None:
        log = await self.make_log(tmp_path)
        try:
            for sequence in range(BUCKET - 2, BUCKET + 3):  # rows as if the first ones were written
                await log.append(entry(sequence))
            assert await log.last() == entry(BUCKET + 2)
            fresh = await open_log(self.keyspace.url)  # knows no bucket yet
            try:
                assert await fresh.last() == entry(BUCKET + 2)
                assert [e.sequence for e in await fresh.read(BUCKET - 3)] == list(
                    range(BUCKET - 2, BUCKET + 3)
                )
                assert [e.sequence for e in await fresh.read(BUCKET, 1)] == [BUCKET + 1]
            finally:
                await fresh.stop()
        finally:
            await log.stop()


async def test_appenders_in_two_processes_keep_one_chain(
    cassandra_keyspace: TestKeyspace, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    count = 30
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", APPENDER, cassandra_keyspace.url, who, str(count),
            cwd=Path(__file__).parents[2],
        )
        for who in ("one", "two")
    ]  # fmt: skip
    assert [await process.wait() for process in processes] == [0, 0]

    log = await open_log(cassandra_keyspace.url)
    try:
        entries = await log.read(limit=1000)
        report = await verify_chain(log)
    finally:
        await log.stop()
    assert [e.sequence for e in entries] == list(range(1, 2 * count + 1))
    assert report.ok, report.problems


async def test_verify_finds_rows_changed_and_deleted_in_the_table(
    cassandra_keyspace: TestKeyspace, cassandra_admin: Session, tmp_path: Path
) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    async with AuditTrail(await open_log(cassandra_keyspace.url)) as trail:
        for i in range(5):
            await trail.record(
                "executions:cancel", actor="key:alice", resource=Resource("executions", f"e{i}")
            )
    table = f"{cassandra_keyspace.name}.audit_records"
    (body,) = cassandra_admin.execute(
        f"SELECT body FROM {table} WHERE chain = %s AND bucket = 0 AND sequence = 2", (CHAIN,)
    ).one()
    cassandra_admin.execute(
        f"UPDATE {table} SET body = %s WHERE chain = %s AND bucket = 0 AND sequence = 2",
        (body.replace("alice", "mallory"), CHAIN),
    )
    cassandra_admin.execute(f"DELETE FROM {table} WHERE chain = %s AND bucket = 0 AND sequence = 4", (CHAIN,))

    log = await open_log(cassandra_keyspace.url)
    try:
        report = await verify_chain(log)
    finally:
        await log.stop()
    assert [(p.sequence, p.kind) for p in report.problems] == [(2, "changed"), (4, "missing")]


def test_cqlsh_reads_the_records_as_text(cassandra_keyspace: TestKeyspace, cassandra_url: str) -> None:
    """The table is plain text JSON: an auditor can read it with cqlsh."""

    async def write() -> None:
        async with AuditTrail(await open_log(cassandra_keyspace.url)) as trail:
            await trail.record("keys:create", actor="cli:root", resource=Resource("keys", "k1"))

    asyncio.run(write())
    host, _, port = cassandra_url.removeprefix("cassandra://").partition(":")
    shown = subprocess.run(
        ["cqlsh", host, port or "9042", "-e", f"SELECT body FROM {cassandra_keyspace.name}.audit_records"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert '"action":"keys:create"' in shown
