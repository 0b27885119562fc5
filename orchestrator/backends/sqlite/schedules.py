"""Schedule states in the event log's SQLite file (``sqlite:///path.db``), table ``schedule_states``.

A save is one ``INSERT ... ON CONFLICT DO NOTHING`` (version 0 -> 1) or ``UPDATE ... WHERE
version = ?``: SQLite's write lock serialises the writers of one file, so of two processes saving
the same expected version exactly one changes a row.

Group commit: saves are committed by one writer coroutine, alone when nothing else waits, else
together with every save queued during the previous commit, in one ``BEGIN IMMEDIATE``
transaction (one fsync for all of them). Inside it the statements run in queue order, so two
saves of one key in one batch behave as they would one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from orchestrator.backends.sqlite import SQLiteSettings, _Database
from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import BackendUnavailable, ScheduleRecord

_DDL = (
    "CREATE TABLE IF NOT EXISTS schedule_states (key TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " body TEXT NOT NULL) WITHOUT ROWID",
)
_LOAD = "SELECT version, body FROM schedule_states WHERE key = ?"
_INSERT = "INSERT INTO schedule_states (key, version, body) VALUES (?, 1, ?) ON CONFLICT (key) DO NOTHING"
_UPDATE = "UPDATE schedule_states SET version = version + 1, body = ? WHERE key = ? AND version = ?"
MAX_BATCH = 512


@dataclass(slots=True)
class _Save:
    key: str
    expected: int
    body: str
    future: asyncio.Future[bool]


class SQLiteSchedules(Lifecycle):
    """The ``ScheduleStates`` port on its own connection (and thread) to the event log's file."""

    def __init__(self, settings: SQLiteSettings) -> None:
        self.settings = settings
        self._db = _Database(settings, "schedules", _DDL)
        self._queue: asyncio.Queue[_Save | None] | None = None
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteSchedules:
        return cls(SQLiteSettings.from_url(url))

    async def start(self) -> None:
        await self._db.open()
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write(self._queue), name="sqlite-schedules-writer")

    async def stop(self) -> None:
        writer, queue = self._writer, self._queue
        self._writer = self._queue = None
        if writer is not None and queue is not None:
            queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        await self._db.close()

    async def load(self, key: str) -> ScheduleRecord:
        return await self._db.run(self._load, key)

    async def save(self, key: str, expected_version: int, body: dict[str, Any]) -> bool:
        if self._queue is None:
            raise RuntimeError(f"{self.settings.url}: schedules is not started")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Save(key, expected_version, json.dumps(body, sort_keys=True), future))
        return await future

    def _load(self, key: str) -> ScheduleRecord:
        row = self._db.connection.execute(_LOAD, (key,)).fetchone()
        return ScheduleRecord(key, 0, {}) if row is None else ScheduleRecord(key, int(row[0]), json.loads(row[1]))

    async def _write(self, queue: asyncio.Queue[_Save | None]) -> None:
        """The one writer: each commit takes every save queued meanwhile (up to MAX_BATCH)."""
        closing = False
        while not closing:
            batch: list[_Save] = []
            item = await queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) == MAX_BATCH or queue.empty():
                    break
                item = queue.get_nowait()
            closing = item is None
            if not batch:
                continue
            try:
                outcomes = await self._db.run(self._commit, batch)
            except Exception as exc:
                failure = exc if isinstance(exc, BackendUnavailable) else BackendUnavailable(
                    f"{self.settings.url}: schedules: the commit failed: {exc}"
                )
                for save in batch:
                    if not save.future.done():
                        save.future.set_exception(failure)
                continue
            for save, outcome in zip(batch, outcomes, strict=True):
                if not save.future.done():  # the caller was cancelled; the outcome stands regardless
                    save.future.set_result(outcome)

    def _commit(self, batch: list[_Save]) -> list[bool]:
        execute = self._db.connection.execute
        execute("BEGIN IMMEDIATE")
        try:
            outcomes = [
                (execute(_INSERT, (s.key, s.body)) if s.expected == 0 else execute(_UPDATE, (s.body, s.key, s.expected)))
                .rowcount == 1
                for s in batch
            ]
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                execute("ROLLBACK")
            raise
        execute("COMMIT")
        return outcomes
