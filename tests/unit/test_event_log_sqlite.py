"""The SQLite event log passes the EventLog contract, survives restarts and commits in groups."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, Literal

import pytest

from orchestrator.backends.sqlite import SQLiteEventLog, SQLiteSettings
from orchestrator.core.events import EXECUTION_SUCCEEDED
from orchestrator.ports import BackendUnavailable, ConcurrencyError, EventLog, ExecutionQuery
from tests.contracts.event_log import EventLogContract
from tests.contracts.factories import event, history, started


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/orchestrator.db"


def record_batch_sizes(log: SQLiteEventLog, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every group commit from now on."""
    sizes: list[int] = []
    commit = log._commit

    def recording(batch: list[Any]) -> list[Exception | None]:
        sizes.append(len(batch))
        return commit(batch)

    monkeypatch.setattr(log, "_commit", recording)
    return sizes


class TestSQLiteEventLog(EventLogContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        log = SQLiteEventLog.from_url(url(tmp_path))
        await log.start()
        return log

    async def test_data_survives_stop_and_reopen(self, tmp_path: Path) -> None:
        log = await self.make_log(tmp_path)
        await log.append("a", 0, history("a", 3))
        await log.append("b", 0, [started("b"), event("b", 2, EXECUTION_SUCCEEDED)])
        before = (await log.summary("a"), await log.list_executions(ExecutionQuery()))
        await log.stop()

        reopened = await self.make_log(tmp_path)
        try:
            assert await reopened.read("a") == history("a", 3)
            assert (
                await reopened.summary("a"),
                await reopened.list_executions(ExecutionQuery()),
            ) == before
            with pytest.raises(ConcurrencyError):
                await reopened.append("a", 2, [event("a", 3)])
            await reopened.append("a", 3, [event("a", 4)])
            assert [e.sequence for e in await reopened.read("a")] == [1, 2, 3, 4]
        finally:
            await reopened.stop()

    async def test_stop_commits_the_appends_already_queued(self, tmp_path: Path) -> None:
        log = await self.make_log(tmp_path)
        appends = [
            asyncio.create_task(log.append(f"q{i}", 0, [started(f"q{i}")])) for i in range(50)
        ]
        await asyncio.sleep(0)  # all queued, none answered yet
        await log.stop()

        assert [a.result() for a in appends] == [None] * 50
        reopened = await self.make_log(tmp_path)
        try:
            page = await reopened.list_executions(ExecutionQuery(limit=100))
            assert len(page.items) == 50
        finally:
            await reopened.stop()

    async def test_one_conflict_in_a_group_commit_fails_only_that_append(
        self, log: SQLiteEventLog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await log.append("busy", 0, history("busy", 2))
        batches = record_batch_sizes(log, monkeypatch)

        outcomes = await asyncio.gather(
            *(log.append(f"n{i}", 0, [started(f"n{i}")]) for i in range(20)),
            log.append("busy", 2, [event("busy", 3, data={"writer": "first"})]),
            log.append("busy", 2, [event("busy", 3, data={"writer": "second"})]),  # stale
            log.append("busy", 0, [started("busy")]),  # already started
            *(log.append(f"m{i}", 0, [started(f"m{i}")]) for i in range(20)),
            return_exceptions=True,
        )

        assert batches == [43]  # one transaction
        assert outcomes[:21] == [None] * 21
        assert isinstance(outcomes[21], ConcurrencyError)
        assert isinstance(outcomes[22], ConcurrencyError)
        assert outcomes[23:] == [None] * 20
        assert [e.data for e in await log.read("busy", after_sequence=2)] == [{"writer": "first"}]
        page = await log.list_executions(ExecutionQuery(limit=100))
        assert len(page.items) == 41

    async def test_a_failing_append_leaves_no_partial_write(
        self, log: SQLiteEventLog, tmp_path: Path
    ) -> None:
        await log.append("busy", 0, history("busy", 2))
        with closing(sqlite3.connect(tmp_path / "orchestrator.db")) as stray, stray:
            # a foreign row at sequence 3 makes the append fail after its summary update
            stray.execute(
                "INSERT INTO events (execution_id, sequence, type, time, body)"
                " VALUES ('busy', 3, 'StepSucceeded', '', x'00')"
            )
        before = await log.summary("busy")

        outcomes = await asyncio.gather(
            log.append("ok1", 0, [started("ok1")]),
            log.append("busy", 2, [event("busy", 3)]),  # its summary update must be undone
            log.append("ok2", 0, [started("ok2")]),
            return_exceptions=True,
        )

        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], ConcurrencyError)
        assert await log.summary("busy") == before
        assert await log.summary("ok1") is not None and await log.summary("ok2") is not None

    async def test_a_lone_append_commits_at_once(
        self, log: SQLiteEventLog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        batches = record_batch_sizes(log, monkeypatch)

        for i in range(5):
            await log.append(f"s{i}", 0, [started(f"s{i}")])

        assert batches == [1, 1, 1, 1, 1]

    async def test_all_sqlite_work_runs_on_one_named_thread(self, tmp_path: Path) -> None:
        def threads() -> list[str]:
            return [t.name for t in threading.enumerate() if t.name.startswith("sqlite-")]

        log = await self.make_log(tmp_path)
        await asyncio.gather(*(log.append(f"t{i}", 0, [started(f"t{i}")]) for i in range(50)))
        await log.read("t1")
        assert threads() == ["sqlite-event_log_0"]
        await log.stop()
        assert threads() == []

    async def test_unopenable_path_names_the_url_and_the_reason(self, tmp_path: Path) -> None:
        bad = f"sqlite:///{tmp_path}/missing/dir/orchestrator.db"
        with pytest.raises(BackendUnavailable, match="unable to open") as raised:
            await SQLiteEventLog.from_url(bad).start()
        assert bad in str(raised.value)

    async def test_a_file_that_is_not_a_database_is_unavailable(self, tmp_path: Path) -> None:
        (tmp_path / "orchestrator.db").write_bytes(b"definitely not sqlite" * 100)
        with pytest.raises(BackendUnavailable, match="not a database"):
            await SQLiteEventLog.from_url(url(tmp_path)).start()

    async def test_appending_before_start_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(RuntimeError, match="not started"):
            await SQLiteEventLog.from_url(url(tmp_path)).append("a", 0, [started("a")])


@pytest.mark.parametrize(
    ("given", "path", "synchronous"),
    [
        ("sqlite:///orchestrator.db", "orchestrator.db", "full"),
        ("sqlite:///data/run.db?synchronous=normal", "data/run.db", "normal"),
        ("sqlite:////var/lib/o.db?synchronous=FULL", "/var/lib/o.db", "full"),
        ("sqlite:////tmp/with%20space.db", "/tmp/with space.db", "full"),
    ],
)
def test_settings_from_url(given: str, path: str, synchronous: Literal["full", "normal"]) -> None:
    assert SQLiteSettings.from_url(given) == SQLiteSettings(given, path, synchronous)


@pytest.mark.parametrize(
    "bad",
    [
        "memory://",
        "sqlite://host/x.db",
        "sqlite:///",
        "sqlite:///x.db?synchronous=off",
        "sqlite:///x.db?journal=delete",
    ],
)
def test_settings_reject_bad_urls(bad: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite|synchronous|journal"):
        SQLiteSettings.from_url(bad)
