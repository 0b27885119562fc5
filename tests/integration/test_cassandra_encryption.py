"""Encryption at rest on the Cassandra event log: the EventLog contract holds with AES-GCM on,
``cqlsh`` finds no plaintext payload in events, snapshots or data keys (and does find it in what
was written before the keyring), and two processes creating a tenant's data key converge."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from orchestrator.backends.cassandra.event_log import CassandraEventLog
from orchestrator.crypto import rotation, setup
from orchestrator.crypto.codec import EncryptedCodec
from orchestrator.crypto.data_keys import DataKeys
from orchestrator.crypto.keyring import Keyring
from orchestrator.ports import EventLog
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from tests.contracts.event_log import EventLogContract
from tests.encryption_kit import MARK, key_text, run_marked
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


def cqlsh_payloads(keyspace: TestKeyspace, statement: str) -> str:
    """What ``cqlsh`` prints for ``statement``, with every blob (0x...) decoded to text."""
    host, _, port = keyspace.url.removeprefix("cassandra://").split("/", 1)[0].partition(":")
    out = subprocess.run(
        ["cqlsh", host, port or "9042", "-k", keyspace.name, "-e", f"PAGING OFF; {statement}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    blobs = re.findall(r"0x([0-9a-f]+)", out)
    return out + "\n".join(bytes.fromhex(b).decode(errors="replace") for b in blobs)


def raw_tables(keyspace: TestKeyspace) -> str:
    return "\n".join(
        cqlsh_payloads(keyspace, statement)
        for statement in (
            "SELECT body FROM events",
            "SELECT body FROM snapshots",
            "SELECT wrapped FROM data_keys",
        )
    )


class TestEncryptedCassandraEventLog(EventLogContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_log(self, tmp_path: Path) -> EventLog:
        await self.keyspace.empty_once(tmp_path)
        log = CassandraEventLog.from_url(self.keyspace.url)
        setup.attach(log, Keyring.from_text(key_text("k1")))
        await log.start()
        return log


async def test_cqlsh_finds_no_plaintext_payload(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    url = cassandra_keyspace.url
    async with Runtime(Settings(event_log_url=url, retention_interval=0)) as plain:
        await run_marked(plain)
    assert MARK in raw_tables(cassandra_keyspace)  # the check sees plaintext when there is some
    await cassandra_keyspace.empty_once(tmp_path / "again")
    keys = key_text("k1")
    async with Runtime(Settings(event_log_url=url, retention_interval=0, snapshot_every=2, encryption_keys=keys)) as rt:
        (execution_id,) = await run_marked(rt)
        assert MARK in str((await rt.state(execution_id)).output)
        assert any(MARK in str(e.data) for e in await rt.history(execution_id))
        await asyncio.sleep(rt.feed.delay + 0.5)  # settled: the feed serves them, decoded
        served = (await rt.feed.read_after(0)).items
        assert any(MARK in str(e.data) for _, e in served if e.subject == execution_id)
    raw = raw_tables(cassandra_keyspace)
    assert "aes256gcm" in raw and "(0 rows)" not in raw  # events, snapshots and a data key exist
    assert MARK not in raw


async def test_two_processes_creating_a_data_key_converge(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    keyring = Keyring.from_text(key_text("k1"))
    logs = [CassandraEventLog.from_url(cassandra_keyspace.url) for _ in range(2)]
    for log in logs:
        await log.start()
    try:
        made = await asyncio.gather(*(DataKeys(keyring, log).current("t") for log in logs for _ in range(2)))
        assert len({key for _, key in made}) == 1
        assert [r.tenant for r in await logs[1].data_keys()] == ["t"]
        assert await logs[0].delete_data_keys("k1") == 1 and await logs[1].data_keys() == []
    finally:
        for log in logs:
            await log.stop()


async def test_rotation_rewrites_every_row_to_the_newest_key(cassandra_keyspace: TestKeyspace, tmp_path: Path) -> None:
    await cassandra_keyspace.empty_once(tmp_path)
    url = cassandra_keyspace.url
    ids = []
    for keys in (("k1",), ("k1", "k2")):
        s = Settings(event_log_url=url, retention_interval=0, snapshot_every=2, encryption_keys=key_text(*keys))
        async with Runtime(s) as runtime:
            ids += await run_marked(runtime, 2)
    s = Settings(event_log_url=url, retention_interval=0, encryption_keys=key_text("k1", "k2"))
    async with open_stores(s) as (log, _):
        before = await rotation.usage(log)
        assert set(before.rows) == {"k1", "k2"}
        codec = log.codec  # type: ignore[attr-defined]
        assert isinstance(codec, EncryptedCodec)
        report = await rotation.rotate(log, codec, tmp_path / "checkpoint.json")
        assert report.rewritten == before.rows["k1"]
        assert dict((await rotation.usage(log)).rows) == {"k2": sum(before.rows.values())}
        with pytest.raises(rotation.KeyStillNeeded, match="current key"):
            await rotation.retire(log, "k2", "k2")
        assert await rotation.retire(log, "k2", "k1") == 1  # the data key of tenant default
    async with Runtime(Settings(event_log_url=url, retention_interval=0, encryption_keys=key_text("k2"))) as runtime:
        for execution_id in ids:
            assert MARK in str((await runtime.state(execution_id)).output)
