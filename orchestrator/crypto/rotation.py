"""Key rotation: which key every stored row is under, re-encryption to the current key, retiring.

Rotating a master key: add the new key to the keyring of every process, make it current (new
writes use it at once, old data stays readable while the old key is in the keyring), then run
:func:`rotate` (``orchestrator keys rotate-data``), online, beside running servers. It walks every
execution and rewrites each event and snapshot not under the current key (``rewrite_stored``:
a row changed meanwhile is left alone); rows already under it are skipped without decrypting, so
running it again is cheap. After an interruption it resumes after the last execution it finished
(a checkpoint file), and goes round once more from the start if that execution is gone. Once
:func:`usage` finds nothing under the old key, :func:`retire` forgets its data keys; it refuses
while anything still needs them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.crypto.codec import EncryptedCodec, stored_key_id
from orchestrator.crypto.sealing import header, is_sealed
from orchestrator.ports import DataKeyStore, EventLog, RewritesStored

PLAINTEXT = "(plaintext)"
Progress = Callable[[int], None]


class KeyStillNeeded(RuntimeError):
    """Retiring a key that stored data, or new writes, still need."""


class NotRotatable(TypeError):
    """An event log that cannot rewrite its rows or keep data keys (e.g. ``memory://``)."""


@dataclass(slots=True)
class Usage:
    """How many stored events and snapshots each key id (or plaintext) holds."""

    rows: Counter[str] = field(default_factory=Counter)
    executions: Counter[str] = field(default_factory=Counter)  # executions with a row under it
    scanned: int = 0

    def to_dict(self) -> dict[str, Any]:
        keys = sorted(self.rows)
        return {
            "executions": self.scanned,
            "keys": [{"key_id": k, "rows": self.rows[k], "executions": self.executions[k]} for k in keys],
        }


@dataclass(slots=True)
class RotationReport:
    current_key: str
    executions: int = 0  # looked at in this run
    skipped: int = 0  # finished before an interruption, not looked at again
    rewritten: int = 0  # rows now under the current key

    def to_dict(self) -> dict[str, Any]:
        return {
            "current_key": self.current_key,
            "executions": self.executions,
            "skipped": self.skipped,
            "rewritten": self.rewritten,
        }


def _rewritable(log: EventLog) -> RewritesStored:
    if not isinstance(log, RewritesStored) or not isinstance(log, DataKeyStore):
        raise NotRotatable(f"{type(log).__name__} keeps nothing at rest to re-encrypt")
    return log


def key_of(kind: str, raw: bytes) -> str:
    if kind == "snapshot":
        return header(raw).key_id if is_sealed(raw) else PLAINTEXT
    return stored_key_id(raw) or PLAINTEXT


async def count_executions(log: EventLog) -> int:
    return sum([1 async for _ in log.execution_ids()])


async def usage(log: EventLog, progress: Progress | None = None) -> Usage:
    """Scan every stored row (without decrypting) and count them by key id."""
    store = _rewritable(log)
    found = Usage()
    async for execution_id in log.execution_ids():
        seen: set[str] = set()

        async def look(kind: str, sequence: int, raw: bytes, seen: set[str] = seen) -> bytes | None:
            key = key_of(kind, raw)
            found.rows[key] += 1
            seen.add(key)
            return None

        await store.rewrite_stored(execution_id, look)
        found.executions.update(seen)
        found.scanned += 1
        if progress is not None:
            progress(1)
    return found


async def rotate(
    log: EventLog, codec: EncryptedCodec, checkpoint: Path | None = None, progress: Progress | None = None
) -> RotationReport:
    """Re-encrypt every stored row not under the current key; resumable from ``checkpoint``."""
    store = _rewritable(log)
    current = codec.keys.current_id
    report = RotationReport(current)
    after = _resume_point(checkpoint, current)

    async def reseal(kind: str, sequence: int, raw: bytes, execution_id: str = "") -> bytes | None:
        return await codec.reseal(kind, execution_id, sequence, raw)

    for full_pass in (False, True):
        waiting = after is not None and not full_pass
        async for execution_id in _ids(log):
            if waiting:
                report.skipped += 1
                if progress is not None:
                    progress(1)
                waiting = execution_id != after
                continue

            async def one(kind: str, sequence: int, raw: bytes, execution_id: str = execution_id) -> bytes | None:
                return await reseal(kind, sequence, raw, execution_id)

            report.rewritten += await store.rewrite_stored(execution_id, one)
            report.executions += 1
            _save(checkpoint, current, execution_id)
            if progress is not None and not full_pass:
                progress(1)
        if after is None or not waiting:  # the resume point was found: that was everything
            break
        report.skipped = 0  # it was deleted meanwhile: once more from the start
    _save(checkpoint, current, None)
    return report


async def retire(log: EventLog, current_key: str | None, key_id: str) -> int:
    """Forget the data keys wrapped by ``key_id``; how many. KeyStillNeeded while rows need it."""
    store = _rewritable(log)
    if key_id == current_key:
        raise KeyStillNeeded(f"key {key_id!r} is the current key: make another key current first")
    found = await usage(log)
    if found.rows[key_id]:
        raise KeyStillNeeded(
            f"key {key_id!r} still encrypts {found.rows[key_id]} stored rows in"
            f" {found.executions[key_id]} executions: run 'orchestrator keys rotate-data' first"
        )
    assert isinstance(store, DataKeyStore)
    return await store.delete_data_keys(key_id)


async def _ids(log: EventLog) -> AsyncIterator[str]:
    async for execution_id in log.execution_ids():
        yield execution_id


def _resume_point(checkpoint: Path | None, current: str) -> str | None:
    if checkpoint is None or not checkpoint.is_file():
        return None
    try:
        state = json.loads(checkpoint.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("current_key") != current:
        return None  # another rotation's checkpoint: start over
    after = state.get("after")
    return after if isinstance(after, str) else None


def _save(checkpoint: Path | None, current: str, after: str | None) -> None:
    if checkpoint is None:
        return
    if after is None:
        checkpoint.unlink(missing_ok=True)
        return
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    temporary = checkpoint.with_suffix(".tmp")
    temporary.write_text(json.dumps({"current_key": current, "after": after}), encoding="utf-8")
    os.replace(temporary, checkpoint)
