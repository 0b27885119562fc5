"""Encryption at rest on the SQLite event log: no plaintext in the file (read with the sqlite3
CLI), the API reads back plaintext, tampered and moved ciphertexts fail clearly, concurrent data
key creation converges, and plaintext written before the keyring still reads."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.crypto import setup
from orchestrator.crypto.codec import UndecryptableEvent
from orchestrator.crypto.data_keys import DataKeys
from orchestrator.crypto.keyring import Keyring, KeyringError, load_keyring
from orchestrator.crypto.sealing import DecryptionError, open_sealed, seal
from orchestrator.engine import snapshots
from orchestrator.history import integrity
from orchestrator.ports import EventLog
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings, SettingsError
from schemas.fields import of_envelope
from tests.contracts.event_log import EventLogContract
from tests.contracts.factories import event, started
from tests.encryption_kit import MARK, key_text, run_marked


def settings(tmp_path: Path, keys: str | None, **more: object) -> Settings:
    return Settings(
        event_log_url=f"sqlite:///{tmp_path}/o.db", retention_interval=0, encryption_keys=keys, **more  # type: ignore[arg-type]
    )


def sqlite_dump(path: Path) -> str:
    """The database as the sqlite3 command-line tool prints it, blobs as hex and as text: a
    plaintext payload shows up in one or the other."""

    def cli(sql: str) -> str:
        return subprocess.run(["sqlite3", str(path), sql], capture_output=True, text=True, check=True).stdout

    dump = cli(".dump")
    text = cli("SELECT CAST(body AS TEXT) FROM events")
    hexed = bytes.fromhex("".join(cli("SELECT hex(body) FROM snapshots").split())).decode(errors="replace")
    return "\n".join((dump, text, hexed))


async def test_nothing_in_the_sqlite_file_is_plaintext_and_the_api_reads_it_back(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, key_text("k1"), snapshot_every=2)) as runtime:
        (execution_id,) = await run_marked(runtime)
        history = await runtime.history(execution_id)
        state = await runtime.state(execution_id)
        assert any(MARK in json.dumps(e.data) for e in history)
        assert MARK in json.dumps(state.output)
        assert all(e.codec == "identity" for e in history)  # the plaintext form, decoded
    dump = sqlite_dump(tmp_path / "o.db")
    assert "INSERT INTO events" in dump and "INSERT INTO snapshots" in dump and "INSERT INTO data_keys" in dump
    assert MARK not in dump
    assert "aes256gcm" in dump
    async with Runtime(settings(tmp_path, key_text("k1"))) as again:  # a restart reads it all
        assert (await again.state(execution_id)).status == "succeeded"
        facts = await integrity.verify_history(again.log, execution_id)  # the hash chain holds
        assert facts.events > 0 and facts.problems == []


async def test_without_the_keyring_encrypted_data_is_refused_clearly(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, key_text("k1"))) as runtime:
        (execution_id,) = await run_marked(runtime)
    async with Runtime(settings(tmp_path, None)) as plain:
        with pytest.raises(ValueError, match="aes256gcm"):
            await plain.history(execution_id)
    async with Runtime(settings(tmp_path, key_text("other", seed=9))) as wrong:
        with pytest.raises(UndecryptableEvent, match="does not hold"):
            await wrong.history(execution_id)


async def test_plaintext_written_before_the_keyring_still_reads(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, None)) as runtime:
        (old,) = await run_marked(runtime)
    assert MARK in sqlite_dump(tmp_path / "o.db")
    async with Runtime(settings(tmp_path, key_text("k1"))) as runtime:
        (new,) = await run_marked(runtime)
        assert (await runtime.state(old)).status == "succeeded"
        assert MARK in json.dumps((await runtime.state(new)).output)


def _bodies(path: Path, execution_id: str) -> list[tuple[int, bytes]]:
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT sequence, body FROM events WHERE execution_id = ? ORDER BY sequence", (execution_id,))
        return [(n, bytes(b)) for n, b in rows]


def _store(path: Path, execution_id: str, sequence: int, body: bytes) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE events SET body = ? WHERE execution_id = ? AND sequence = ?", (body, execution_id, sequence))


async def test_a_tampered_ciphertext_is_detected_with_a_clear_error(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, key_text("k1"), snapshot_every=0)) as runtime:
        (execution_id,) = await run_marked(runtime)
    sequence, body = _bodies(tmp_path / "o.db", execution_id)[0]
    event = json.loads(body)
    blob = bytearray(base64.b64decode(event["data_base64"]))
    blob[-3] ^= 0x01
    event["data_base64"] = base64.b64encode(bytes(blob)).decode()
    _store(tmp_path / "o.db", execution_id, sequence, json.dumps(event).encode())
    async with Runtime(settings(tmp_path, key_text("k1"), snapshot_every=0), recover=False) as runtime:
        with pytest.raises(UndecryptableEvent, match=rf"#{sequence} of {execution_id}: .*does not verify"):
            await runtime.history(execution_id)


async def test_a_ciphertext_moved_to_another_event_fails_to_decrypt(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, key_text("k1"), snapshot_every=0)) as runtime:
        first, second = await run_marked(runtime, 2)
    (_, one), (_, two) = _bodies(tmp_path / "o.db", first)[:2]
    moved = json.loads(two)
    moved["data_base64"] = json.loads(one)["data_base64"]  # event 1's data into event 2
    _store(tmp_path / "o.db", first, 2, json.dumps(moved).encode())
    other = json.loads(_bodies(tmp_path / "o.db", second)[0][1])
    other["data_base64"] = json.loads(one)["data_base64"]  # into another execution's event 1
    _store(tmp_path / "o.db", second, 1, json.dumps(other).encode())
    async with Runtime(settings(tmp_path, key_text("k1"), snapshot_every=0), recover=False) as runtime:
        with pytest.raises(UndecryptableEvent, match=f"#2 of {first}"):
            await runtime.history(first)
        with pytest.raises(UndecryptableEvent, match=f"#1 of {second}"):
            await runtime.history(second)


async def test_a_ciphertext_moved_to_another_tenant_fails(tmp_path: Path) -> None:
    keyring = Keyring.from_text(key_text("k1"))
    store = MemoryEventLog()
    keys = DataKeys(keyring, store)
    key_id, key_a = await keys.current("a")
    _, key_b = await keys.current("b")
    assert key_a != key_b  # one data key per tenant
    blob = seal(key_a, "a", key_id, b"secret", "event/x/1")
    assert open_sealed(key_a, blob, "event/x/1") == b"secret"
    with pytest.raises(DecryptionError):
        open_sealed(key_b, blob, "event/x/1")
    with pytest.raises(DecryptionError):
        open_sealed(key_a, blob, "event/x/2")


async def test_two_processes_creating_a_tenants_data_key_at_once_converge(tmp_path: Path) -> None:
    keyring = Keyring.from_text(key_text("k1"))
    logs = [SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db") for _ in range(2)]
    for log in logs:
        await log.start()
    try:
        managers = [DataKeys(keyring, log) for log in logs]
        made = await asyncio.gather(*(m.current("t") for m in managers for _ in range(3)))
        assert len({key for _, key in made}) == 1
        assert len(await logs[0].data_keys("t")) == 1
    finally:
        for log in logs:
            await log.stop()


async def test_a_snapshot_under_encryption_loads_and_a_tampered_one_is_skipped(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, key_text("k1"), snapshot_every=2)) as runtime:
        (execution_id,) = await run_marked(runtime)
        loaded = await snapshots.load(runtime.log, execution_id)
        assert loaded is not None and loaded.from_snapshot > 0
    with closing(sqlite3.connect(tmp_path / "o.db")) as db, db:
        db.execute("UPDATE snapshots SET body = CAST(substr(body, 1, length(body) - 1) || x'00' AS BLOB)")
    async with Runtime(settings(tmp_path, key_text("k1"), snapshot_every=2), recover=False) as runtime:
        loaded = await snapshots.load(runtime.log, execution_id)
        assert loaded is not None and loaded.from_snapshot == 0  # folded from the events instead
        assert loaded.state.status == "succeeded"


def test_keyrings_from_a_file_and_the_environment(tmp_path: Path) -> None:
    ring = Keyring.from_text(key_text("a", "b"))
    assert ring.current == "b" and sorted(ring.keys) == ["a", "b"]
    assert load_keyring(None, key_text("a", "b"), "a").current == "a"  # type: ignore[union-attr]
    path = tmp_path / "keyring.json"
    keys = dict(item.split("=", 1) for item in key_text("x", "y").split(","))
    path.write_text(json.dumps({"current": "x", "keys": keys}))
    assert Keyring.from_file(str(path)).current == "x"
    assert load_keyring(None, None, None) is None
    for bad, message in (
        ("k1=bm90MzI=", "has 5 bytes"),
        ("k1", "not ID=BASE64"),
        ("k1=!!!", "not valid base64"),
        ("bad id=" + key_text("z").split("=", 1)[1], "invalid key id"),
    ):
        with pytest.raises(KeyringError, match=message):
            Keyring.from_text(bad)
    with pytest.raises(KeyringError, match="not in it"):
        Keyring.from_text(key_text("a"), "missing")
    path.write_text("{")
    with pytest.raises(KeyringError, match="cannot read keyring file"):
        Keyring.from_file(str(path))


def test_the_settings_read_the_keyring_and_its_status() -> None:
    env = {"ORCHESTRATOR_ENCRYPTION_KEYS": key_text("k1", "k2"), "ORCHESTRATOR_TRANSITIONS_PLAINTEXT": "true"}
    s = Settings.from_env(env)
    assert s.transitions_plaintext and "ENCRYPTION_KEYS" not in repr(s) and key_text("k1") not in repr(s)
    status = setup.status_of(setup.keyring_of(s))
    assert status.to_dict() == {"enabled": True, "current_key": "k2", "keys": ["k1", "k2"], "source": "ORCHESTRATOR_ENCRYPTION_KEYS"}
    assert not setup.status_of(setup.keyring_of(Settings())).enabled
    with pytest.raises(SettingsError):
        Settings.from_env({"ORCHESTRATOR_TRANSITIONS_PLAINTEXT": "maybe"})


def test_a_log_without_a_data_key_store_cannot_be_encrypted() -> None:
    with pytest.raises(KeyringError, match="no data key store"):
        setup.attach(object(), Keyring.from_text(key_text("k1")))


class TestEncryptedSQLiteEventLog(EventLogContract):
    """The whole EventLog contract holds with AES-GCM on."""

    async def make_log(self, tmp_path: Path) -> EventLog:
        log = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/orchestrator.db")
        assert setup.attach(log, Keyring.from_text(key_text("k1"))) is not None
        await log.start()
        return log


@pytest.mark.parametrize(
    "data",
    [None, 0, "x", [], {"codec": "identity", "data": 1}, {"n": {"datacontenttype": "application/json", "z": 1}},
     {"s": ',"datacontenttype":"application/json",'}, {"é": "😀"}],
)
async def test_the_spliced_sealed_form_equals_the_one_built_from_scratch(data: object) -> None:
    from orchestrator.crypto.codec import EncryptedCodec
    from schemas.envelope import Envelope

    keys = DataKeys(Keyring.from_text(key_text("k1")), MemoryEventLog())
    codec = EncryptedCodec(keys)
    envelope = Envelope.sealed("", id="e", type="T", subject="x", sequence=3, time="t", workflow="w",
                               workflowversion=1, data=data, actor="a", causationid="c")
    (sealed,) = await codec.encode([envelope])
    event = json.loads(sealed)
    assert list(event) == sorted(event) and event["codec"] == "aes256gcm" and "data" not in event
    (back,) = await codec.decode([sealed])
    assert back == envelope and back.to_bytes() == envelope.to_bytes()
    plain = json.loads(envelope.to_bytes())
    del plain["data"], event["data_base64"]
    plain["codec"] = "aes256gcm"
    assert event == plain


async def test_the_fields_read_of_an_encrypted_log_decrypts_like_the_envelope_read(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, key_text("k1"))) as runtime:
        await run_marked(runtime)
        feed = runtime.log.feed()  # type: ignore[attr-defined]
        page = await feed.read_after(0, 1000)
        wanted = {e.type for _, e in page.items}
        fields = await feed.read_fields_after(0, 1000, wanted)
    assert fields.items == [of_envelope(at, e, wanted) for at, e in page.items]
    assert any(MARK in json.dumps(item[8]) for item in fields.items)  # decrypted, not the sealed bytes


async def test_the_writer_serves_its_recent_events_to_the_feed_as_a_reader_decodes_them(tmp_path: Path) -> None:
    """The feed of the process that appended takes its recent envelopes from memory (no second
    decryption); another process decrypts the rows; both read the same events."""
    writer = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
    reader = SQLiteEventLog.from_url(f"sqlite:///{tmp_path}/o.db")
    for log in (writer, reader):
        assert setup.attach(log, Keyring.from_text(key_text("k1"))) is not None
        await log.start()
    try:
        await writer.append("e1", 0, [started("e1", input={"card": MARK})])
        await writer.append("e1", 1, [event("e1", 2), event("e1", 3)])
        # appends queued together go in one group commit: positions in batch order
        await asyncio.gather(*(writer.append(f"g{n}", 0, [started(f"g{n}")]) for n in range(5)))
        await asyncio.gather(*(writer.append(f"g{n}", 1, [event(f"g{n}", 2), event(f"g{n}", 3)]) for n in range(5)))
        mine, theirs = await writer.feed().read_after(0), await reader.feed().read_after(0)
        assert mine.items == theirs.items and [p for p, _ in mine.items] == list(range(1, 19))
        assert mine.items[0][1].data["input"] == {"card": MARK}
        assert await reader.read("e1") == [e for _, e in theirs.items if e.subject == "e1"]
    finally:
        await writer.stop()
        await reader.stop()
