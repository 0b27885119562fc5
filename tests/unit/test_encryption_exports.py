"""Exports and retention archives of an encrypted log hold no plaintext payload, carry the wrapped
data keys, and import into another store with the same keyring (never into one without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.history import archive
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from schemas.validation import parse_definition
from tests.encryption_kit import MARK, key_text, run_marked

T0 = 1_780_000_000.0


def settings(tmp_path: Path, name: str, keys: str | None, **more: object) -> Settings:
    return Settings(
        event_log_url=f"sqlite:///{tmp_path}/{name}.db", retention_interval=0, encryption_keys=keys, **more  # type: ignore[arg-type]
    )


async def test_an_export_stays_encrypted_and_imports_with_the_same_keyring(tmp_path: Path) -> None:
    keys = key_text("k1")
    async with Runtime(settings(tmp_path, "a", keys)) as runtime:
        ids = await run_marked(runtime, 2, tenant="acme")
        before = {x: await runtime.history(x, tenant="acme") for x in ids}
    path = tmp_path / "export.jsonl"
    async with open_stores(settings(tmp_path, "a", keys)) as (log, registry):
        report = await archive.export_to_file(log, registry, path)
    assert report.executions == 2
    text = path.read_text()
    assert MARK not in text and '"kind":"data_key"' in text and "aes256gcm" in text
    async with open_stores(settings(tmp_path, "b", keys)) as (log, registry):
        imported = await archive.import_(log, registry, text.splitlines())
        assert imported.ok and imported.events_appended == sum(map(len, before.values()))
        for x, events in before.items():
            assert [e.to_bytes() for e in await log.read(x)] == [e.to_bytes() for e in events]
    async with open_stores(settings(tmp_path, "c", None)) as (log, registry):
        with pytest.raises(archive.ArchiveError, match=r"encrypted .*configure the keyring"):
            await archive.import_(log, registry, text.splitlines())


async def test_an_unencrypted_export_is_unchanged(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path, "a", None)) as runtime:
        await run_marked(runtime)
        path = tmp_path / "plain.jsonl"
        await archive.export_to_file(runtime.log, runtime.registry, path)
    assert MARK in path.read_text() and "data_key" not in path.read_text()


async def test_a_retention_archive_holds_no_plaintext(tmp_path: Path) -> None:
    now = [T0]
    archive_dir = tmp_path / "archive"
    s = settings(tmp_path, "a", key_text("k1"), archive_dir=str(archive_dir))
    async with Runtime(s, clock=lambda: now[0]) as runtime:
        definition = {
            "name": "secretive",
            "retention": {"days": 1, "archive": True},
            "steps": [{"name": "echo", "type": "task", "connector": "noop", "input": {"secret": "input.secret"}}],
        }
        await runtime.register(parse_definition(definition))
        started = await runtime.start_execution("secretive", {"secret": MARK})
        await runtime.wait(started.execution_id, timeout=10)
        now[0] = T0 + 3 * 86_400
        report = await runtime.retention.sweep()
        assert report.expired == [started.execution_id]
    (path,) = map(Path, report.archived)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines[:3]] == ["header", "data_key", "definition"]
    assert MARK not in path.read_text()
    async with open_stores(settings(tmp_path, "restored", key_text("k1"))) as (log, registry):
        restored = await archive.import_(log, registry, path.read_text().splitlines())
        assert restored.ok
        assert any(MARK in json.dumps(e.data) for e in await log.read(started.execution_id))
