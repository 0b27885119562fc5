"""``orchestrator keys rotate-data | retire | encryption-status`` on SQLite: data written under
three master keys all reads back, is moved to the newest by an interrupted-then-resumed
re-encryption, and a key retires only once nothing needs it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.crypto import rotation
from orchestrator.crypto.codec import EncryptedCodec
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from tests.encryption_kit import MARK, key_text, run_marked

KEYS = ("k1", "k2", "k3")


def settings(db: Path, *keys: str, **more: object) -> Settings:
    return Settings(event_log_url=f"sqlite:///{db}", retention_interval=0, encryption_keys=key_text(*keys), **more)  # type: ignore[arg-type]


def use(monkeypatch: pytest.MonkeyPatch, db: Path, *keys: str) -> None:
    monkeypatch.setenv("ORCHESTRATOR_EVENT_LOG_URL", f"sqlite:///{db}")
    monkeypatch.setenv("ORCHESTRATOR_ENCRYPTION_KEYS", key_text(*keys))
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(db.parent / "state"))


def status(capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    assert main(["keys", "encryption-status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    return {k["key_id"]: k["rows"] for k in report["keys"]}


async def write_under_three_keys(db: Path) -> dict[str, list[str]]:
    """Two executions under each of k1, k2 (current after k1) and k3, each with snapshots."""
    ids = {}
    for n in range(1, 4):
        async with Runtime(settings(db, *KEYS[:n], snapshot_every=2)) as runtime:
            ids[KEYS[n - 1]] = await run_marked(runtime, 2)
    return ids


def raw_key_ids(db: Path) -> set[str]:
    """The key ids in the stored envelopes' sealed data, read with the sqlite3 tool."""
    out = subprocess.run(["sqlite3", str(db), "SELECT CAST(body AS TEXT) FROM events"], capture_output=True, text=True, check=True).stdout
    return {rotation.key_of("event", line.encode()) for line in out.splitlines() if line}


async def all_read(db: Path, ids: dict[str, list[str]], *keys: str) -> None:
    async with Runtime(settings(db, *keys)) as runtime:
        for execution_id in [x for group in ids.values() for x in group]:
            assert MARK in json.dumps((await runtime.state(execution_id)).output)


async def interrupted_rotation(db: Path, checkpoint: Path) -> None:
    """Re-encrypt until two executions are done, then stop as a Ctrl-C would."""
    async with open_stores(settings(db, *KEYS)) as (log, _):
        codec = log.codec  # type: ignore[attr-defined]
        assert isinstance(codec, EncryptedCodec)
        done = []

        def stop_after_two(count: int) -> None:
            done.append(count)
            if len(done) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await rotation.rotate(log, codec, checkpoint, stop_after_two)


def test_three_keys_rotation_and_retiring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "o.db"
    ids = asyncio.run(write_under_three_keys(db))
    assert raw_key_ids(db) == set(KEYS)
    asyncio.run(all_read(db, ids, *KEYS))  # every key's data reads back
    use(monkeypatch, db, *KEYS)
    before = status(capsys)
    assert set(before) == set(KEYS) and all(before.values())

    assert main(["keys", "retire", "k1"]) == 1  # data still needs it
    assert "still encrypts" in capsys.readouterr().err
    assert main(["keys", "retire", "k3"]) == 1  # the current key
    assert "current key" in capsys.readouterr().err

    # an interrupted re-encryption resumes after the last execution it finished
    asyncio.run(interrupted_rotation(db, tmp_path / "state" / "rotate-data.json"))
    assert (tmp_path / "state" / "rotate-data.json").is_file()
    assert main(["keys", "rotate-data", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] == 2 and report["executions"] == 4 and report["current_key"] == "k3"
    assert not (tmp_path / "state" / "rotate-data.json").exists()
    assert status(capsys) == {"k3": sum(before.values())}
    assert raw_key_ids(db) == {"k3"}

    assert main(["keys", "rotate-data"]) == 0  # again: nothing left to do
    assert "0 rows re-encrypted under k3" in capsys.readouterr().out
    assert main(["keys", "retire", "k1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"key_id": "k1", "data_keys_deleted": 1}
    assert main(["keys", "retire", "k2"]) == 0
    capsys.readouterr()
    asyncio.run(all_read(db, ids, "k3"))  # the newest key alone reads everything
    with closing(sqlite3.connect(db)) as connection:
        assert [k for (k,) in connection.execute("SELECT DISTINCT key_id FROM data_keys")] == ["k3"]


def test_the_key_commands_refuse_without_a_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_EVENT_LOG_URL", f"sqlite:///{tmp_path}/o.db")
    monkeypatch.delenv("ORCHESTRATOR_ENCRYPTION_KEYS", raising=False)
    assert main(["keys", "rotate-data"]) == 2
    assert "encryption at rest is off" in capsys.readouterr().err
    monkeypatch.setenv("ORCHESTRATOR_ENCRYPTION_KEYS", "k1=short")
    assert main(["keys", "retire", "k1"]) == 2
    assert "not valid base64" in capsys.readouterr().err
    assert main(["keys", "new-master-key", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["key"]) == 44
