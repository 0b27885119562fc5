"""The Cassandra secret records pass the secret store contract against a real Cassandra, and the
raw table (read with the plain driver, not our code) holds ciphertext only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchestrator.backends.cassandra.secrets import CassandraSecretRecords
from orchestrator.backends.urls import EVENT_LOGS, SECRET_RECORDS, open_backend
from orchestrator.ports import DataKeyStore, SecretRecords
from orchestrator.secrets.sealed import SealedSecrets
from orchestrator.secrets.sealing import AesGcmSealer, new_key
from tests.contracts.secrets import VALUE, KeyringSecretsContract
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


class TestCassandraSecrets(KeyringSecretsContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_records(self, tmp_path: Path) -> SecretRecords:
        await self.keyspace.empty_once(tmp_path)
        records = open_backend(SECRET_RECORDS, self.keyspace.url, "secret store")
        assert isinstance(records, CassandraSecretRecords)
        await records.start()
        return records

    async def make_data_keys(self, tmp_path: Path) -> DataKeyStore:
        log = open_backend(EVENT_LOGS, self.keyspace.url, "event log")
        await log.start()
        assert isinstance(log, DataKeyStore)
        return log

    async def test_the_raw_table_holds_no_value(self, tmp_path: Path) -> None:
        store = SealedSecrets(await self.make_records(tmp_path), AesGcmSealer.from_text(new_key()))
        async with store:
            await store.put("acme", "DB_PASSWORD", VALUE)

        def raw() -> list[bytes]:
            rows = self.keyspace.admin.execute(f"SELECT name, sealed FROM {self.keyspace.name}.secrets")
            return [bytes(row.sealed) for row in rows if row.name == "DB_PASSWORD"]

        [sealed] = await asyncio.to_thread(raw)
        assert VALUE.encode() not in sealed and sealed.startswith(b"S1")
