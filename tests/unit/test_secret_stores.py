"""The secret stores: memory and SQLite pass the contract; the environment, file and directory
stores name secrets as documented; the chain asks each store in turn."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.backends.memory_secrets import MemorySecretRecords
from orchestrator.backends.sqlite.secrets import SQLiteSecretRecords
from orchestrator.backends.urls import EVENT_LOGS, SECRET_RECORDS, open_backend
from orchestrator.ports import DataKeyStore, SecretRecords, SecretsUnavailable
from orchestrator.secrets.sealed import SealedSecrets
from orchestrator.secrets.sealing import AesGcmSealer, new_key, sealer_from
from orchestrator.secrets.stores import ChainedSecrets, DirectorySecrets, SettingsSecrets
from orchestrator.settings import Settings, SettingsError
from orchestrator.stores import open_secret_store
from tests.contracts.secrets import VALUE, KeyringSecretsContract


class TestMemorySecrets(KeyringSecretsContract):
    durable = False

    async def make_records(self, tmp_path: Path) -> SecretRecords:
        records = MemorySecretRecords()
        await records.start()
        return records


class TestSQLiteSecrets(KeyringSecretsContract):
    async def make_records(self, tmp_path: Path) -> SecretRecords:
        records = open_backend(SECRET_RECORDS, f"sqlite:///{tmp_path}/log.db", "secret store")
        assert isinstance(records, SQLiteSecretRecords)
        await records.start()
        return records

    async def make_data_keys(self, tmp_path: Path) -> DataKeyStore:
        log = open_backend(EVENT_LOGS, f"sqlite:///{tmp_path}/log.db", "event log")
        await log.start()
        assert isinstance(log, DataKeyStore)
        return log

    async def test_the_raw_file_holds_no_value(self, tmp_path: Path) -> None:
        """Read with the sqlite3 command-line tool, not through the code under test."""
        store = open_secret_store(Settings(event_log_url=f"sqlite:///{tmp_path}/log.db", secrets_key=new_key()))
        async with store:
            await store.put("default", "DB_PASSWORD", VALUE)
        dump = await asyncio.to_thread(sqlite_dump, tmp_path / "log.db")
        assert "secrets" in dump and "DB_PASSWORD" in dump
        assert VALUE not in dump and VALUE.encode().hex() not in dump.lower()


def sqlite_dump(path: Path) -> str:
    """The whole database as the sqlite3 command-line tool prints it (blobs as hex)."""
    sqlite3 = shutil.which("sqlite3")
    assert sqlite3 is not None, "the sqlite3 command-line tool is needed"
    return subprocess.run([sqlite3, str(path), ".dump"], capture_output=True, text=True, check=True).stdout


def test_a_bad_key_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="ORCHESTRATOR_SECRETS_KEY"):
        open_secret_store(Settings(event_log_url="memory://", secrets_key="c2hvcnQ="))
    with pytest.raises(ValueError, match="not base64"):
        sealer_from("***")
    assert AesGcmSealer.from_text(new_key().replace("+", "-").replace("/", "_")).key_id  # URL-safe works


async def test_settings_secrets_are_scoped_by_tenant() -> None:
    env = {"ORCHESTRATOR_SECRET_API_TOKEN": "from-env"}
    store = SettingsSecrets(Settings.from_env(env).secrets)
    assert await store.get("default", "API_TOKEN") == "from-env"
    assert await store.get("default", "api_token") == "from-env"  # names are case-insensitive
    assert await store.get("acme", "API_TOKEN") is None  # the environment serves the default tenant
    tenant = SettingsSecrets({"acme/API_TOKEN": "acme's"})  # a secrets-file key
    assert await tenant.get("acme", "API_TOKEN") == "acme's" and await tenant.get("default", "API_TOKEN") is None
    with pytest.raises(SecretsUnavailable, match="read-only"):
        await store.put("default", "X", "y")


async def test_the_secrets_file_feeds_the_settings_store(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text("API_TOKEN: from-file\nacme/API_TOKEN: acme-file\n")
    settings = Settings.from_env({"ORCHESTRATOR_SECRETS_FILE": str(path)})
    store = SettingsSecrets(settings.secrets)
    assert await store.get("default", "API_TOKEN") == "from-file"
    assert await store.get("acme", "API_TOKEN") == "acme-file"


async def test_directory_secrets(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "TOKEN").write_text("acme-token\n")
    (tmp_path / "TOKEN").write_text("default-token")
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "OTHER").write_text("other")
    store = DirectorySecrets(str(tmp_path))
    assert await store.get("acme", "TOKEN") == "acme-token"  # one trailing newline dropped
    assert await store.get("default", "TOKEN") == "default-token"
    assert await store.get("default", "OTHER") == "other"
    assert await store.get("acme", "OTHER") is None
    assert await store.get("default", "acme") is None  # a directory is not a secret
    assert await store.get("default", "../TOKEN") is None  # never a path


async def test_the_chain_takes_the_first_store_that_has_the_name(tmp_path: Path) -> None:
    stored = MemorySecretRecords()
    sealed = SealedSecrets(stored, AesGcmSealer.from_text(new_key()))
    await sealed.put("default", "A", "stored")
    chain = ChainedSecrets([sealed, SettingsSecrets({"A": "env", "B": "env-b"})])
    assert await chain.get("default", "A") == "stored"
    assert await chain.get("default", "B") == "env-b"
    assert await chain.get("default", "C") is None


def test_the_secrets_key_never_shows_in_the_cluster_view_or_repr() -> None:
    from orchestrator.cluster.config import effective_config

    key = new_key()
    settings = Settings(secrets_key=key)
    shown = effective_config(settings)
    assert shown["secrets_key"] == "***" and key not in str(shown) and key not in repr(settings)
    assert effective_config(Settings())["secrets_key"] is None
