"""The SQLite feed passes the feed contract, keeps positions across reopens and upgrades old files."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.backends.sqlite.feed import RecentEvents
from orchestrator.ports import BackendUnavailable, EventLog, ExecutionQuery
from tests.contracts.factories import at, event, history, started
from tests.contracts.feed import FeedContract, read_all


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/orchestrator.db"


async def opened(tmp_path: Path) -> SQLiteEventLog:
    log = SQLiteEventLog.from_url(url(tmp_path))
    await log.start()
    return log


class TestSQLiteFeed(FeedContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        return await opened(tmp_path)

    async def test_positions_and_checkpoints_survive_reopen(self, tmp_path: Path) -> None:
        log = await opened(tmp_path)
        await log.append("a", 0, history("a", 3))
        await log.checkpoints().save("audit", 2)
        before = (await log.feed().read_after(0)).items
        head = await log.feed().head()
        await log.stop()

        log = await opened(tmp_path)
        try:
            assert (await log.feed().read_after(0)).items == before
            assert await log.feed().head() == head == 3
            assert await log.checkpoints().load("audit") == 2
            await log.append("b", 0, [started("b")])
            page = await log.feed().read_after(2)
            assert [(p, e.subject, e.sequence) for p, e in page.items] == [(3, "a", 3), (4, "b", 1)]
        finally:
            await log.stop()

    async def test_positions_are_never_reused_after_a_delete(self, log: SQLiteEventLog) -> None:
        await log.append("a", 0, history("a", 2))
        await log.append("b", 0, history("b", 2))
        assert await log.delete_execution("b")  # the newest rows go

        await log.append("c", 0, [started("c")])

        page = await log.feed().read_after(2)
        assert [(p, e.subject) for p, e in page.items] == [(5, "c")]
        assert await log.feed().head() == 5

    async def test_two_logs_on_one_file_share_one_order(self, tmp_path: Path) -> None:
        """Another process (here: a second log object) commits to the same file concurrently."""
        first, second = await opened(tmp_path), await opened(tmp_path)
        try:

            async def write(log: SQLiteEventLog, name: str) -> None:
                for n in range(10):
                    execution_id = f"{name}{n}"
                    await log.append(execution_id, 0, [started(execution_id)])
                    await log.append(execution_id, 1, [event(execution_id, 2)])

            await asyncio.gather(write(first, "f"), write(second, "s"))
            keys, positions, _ = await read_all(first.feed(), limit=3)

            assert len(keys) == len(set(keys)) == 40
            assert positions == sorted(set(positions))
            assert (await second.feed().read_after(0, 100)).items == (await first.feed().read_after(0, 100)).items
        finally:
            await first.stop()
            await second.stop()


SCHEMA_ONE = (  # the tables of event log schema 1, as that code created them
    "CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE events (execution_id TEXT NOT NULL, sequence INTEGER NOT NULL,"
    " type TEXT NOT NULL, time TEXT NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY (execution_id, sequence)) WITHOUT ROWID",
    "CREATE TABLE executions (execution_id TEXT PRIMARY KEY, workflow TEXT NOT NULL,"
    " version INTEGER NOT NULL, tenant TEXT NOT NULL, status TEXT NOT NULL,"
    " started_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_sequence INTEGER NOT NULL,"
    " parent_id TEXT) WITHOUT ROWID",
)


def schema_one_file(path: Path) -> None:
    """A file as the code before the feed left it: no position column, schema version 1."""
    rows = [  # (execution, sequence, time): b interleaves with a; c's clock went back at 2
        ("a", 1, at(1)), ("b", 1, at(2)), ("a", 2, at(3)), ("c", 1, at(4)),
        ("c", 2, at(0)), ("b", 2, at(5)), ("a", 3, at(6)),
    ]  # fmt: skip
    with closing(sqlite3.connect(path)) as connection, connection:
        for statement in SCHEMA_ONE:
            connection.execute(statement)
        connection.execute("INSERT INTO schema_version VALUES ('event_log', 1)")
        for execution_id, sequence, time in rows:
            actor = f"webhook:{execution_id}-hook" if execution_id != "c" else None
            envelope = (
                started(execution_id, time=time, actor=actor) if sequence == 1 else event(execution_id, sequence, time=time)
            )
            connection.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                (execution_id, sequence, envelope.type, time, envelope.to_bytes()),
            )
        for execution_id, last in (("a", 3), ("b", 2), ("c", 2)):
            connection.execute(
                "INSERT INTO executions VALUES (?, 'wf', 1, 'default', 'running', ?, ?, ?, NULL)",
                (execution_id, at(0), at(6), last),
            )


async def test_a_schema_one_file_gets_positions_when_opened(tmp_path: Path) -> None:
    schema_one_file(tmp_path / "orchestrator.db")

    log = await opened(tmp_path)
    try:
        page = await log.feed().read_after(0)
        keys = [(e.subject, e.sequence) for _, e in page.items]
        assert keys == [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("c", 2), ("b", 2), ("a", 3)]
        assert [p for p, _ in page.items] == list(range(1, 8))
        await log.append("a", 3, [event("a", 4)])
        assert [(p, e.sequence) for p, e in (await log.feed().read_after(7)).items] == [(8, 4)]
        assert [e.sequence for e in await log.read("c")] == [1, 2]
        # schema 3: who started each one, read from its first event
        assert [(await log.summary(x)).started_by for x in "abc"] == ["webhook:a-hook", "webhook:b-hook", None]  # type: ignore[union-attr]
        page = await log.list_executions(ExecutionQuery(started_by="webhook:b-hook"))
        assert [s.execution_id for s in page.items] == ["b"]
    finally:
        await log.stop()
    with closing(sqlite3.connect(tmp_path / "orchestrator.db")) as connection:
        versions = dict(connection.execute("SELECT component, version FROM schema_version"))
    assert versions == {"event_log": 3}


async def test_a_file_from_newer_code_is_refused(tmp_path: Path) -> None:
    await (await opened(tmp_path)).stop()  # a file at this code's schema
    with closing(sqlite3.connect(tmp_path / "orchestrator.db")) as connection, connection:
        connection.execute("UPDATE schema_version SET version = 4 WHERE component = 'event_log'")
    with pytest.raises(BackendUnavailable, match="event_log schema 4 is newer than 3"):
        await opened(tmp_path)


def test_recent_events_keep_the_newest_up_to_their_capacity() -> None:
    recent = RecentEvents(capacity=3)
    recent.add(1, [started("a"), event("a", 2)])
    recent.add(3, [event("a", 3), event("a", 4)])
    assert [recent.get(p) for p in (1, 5)] == [None, None]
    assert [e.sequence for p in (2, 3, 4) if (e := recent.get(p))] == [2, 3, 4]
    assert RecentEvents(0).get(1) is None
    nothing = RecentEvents(0)
    nothing.add(1, [started("b")])
    assert nothing.get(1) is None
