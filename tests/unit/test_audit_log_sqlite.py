"""The SQLite audit log passes the AuditLog contract, survives restarts, shares its file with the
event log, and ``verify`` finds rows edited, deleted or swapped with the ``sqlite3`` shell."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.audit.record import Resource, parse, seal
from orchestrator.audit.trail import AuditTrail
from orchestrator.audit.verify import verify_chain
from orchestrator.backends.sqlite import SQLiteEventLog
from orchestrator.backends.sqlite.audit import SQLiteAuditLog
from orchestrator.ports import AuditLog
from tests.contracts.audit_log import AuditLogContract, entry
from tests.contracts.factories import history

SQLITE3 = shutil.which("sqlite3")


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/orchestrator.db"


def sqlite3_shell(tmp_path: Path, sql: str) -> str:
    """Run SQL with the sqlite3 command-line shell, as someone with access to the file would."""
    assert SQLITE3 is not None, "the sqlite3 shell is needed (apt-get install sqlite3)"
    done = subprocess.run(
        [SQLITE3, str(tmp_path / "orchestrator.db"), sql], capture_output=True, text=True, check=True
    )
    return done.stdout


class TestSQLiteAuditLog(AuditLogContract):
    async def make_log(self, tmp_path: Path) -> AuditLog:
        log = SQLiteAuditLog.from_url(url(tmp_path))
        await log.start()
        return log

    async def test_entries_survive_stop_and_reopen(self, tmp_path: Path) -> None:
        log = await self.make_log(tmp_path)
        await log.append(entry(1))
        await log.stop()

        reopened = await self.make_log(tmp_path)
        try:
            assert await reopened.read() == [entry(1)]
            await reopened.append(entry(2))
        finally:
            await reopened.stop()

    async def test_it_shares_the_file_with_the_event_log(self, tmp_path: Path) -> None:
        events = SQLiteEventLog.from_url(url(tmp_path))
        await events.start()
        audit = await self.make_log(tmp_path)
        try:
            await events.append("a", 0, history("a", 2))
            await audit.append(entry(1))
            assert await events.read("a") == history("a", 2) and await audit.read() == [entry(1)]
        finally:
            await audit.stop()
            await events.stop()


async def chain_of(tmp_path: Path, count: int) -> None:
    async with AuditTrail(SQLiteAuditLog.from_url(url(tmp_path))) as trail:
        for i in range(1, count + 1):
            await trail.record(
                "executions:cancel",
                actor="key:alice",
                resource=Resource("executions", f"e{i}"),
                outcome="denied",
            )


async def verified(tmp_path: Path) -> list[tuple[int, str]]:
    async with SQLiteAuditLog.from_url(url(tmp_path)) as log:
        report = await verify_chain(log)
    return [(p.sequence, p.kind) for p in report.problems]


async def test_an_untouched_chain_verifies(tmp_path: Path) -> None:
    await chain_of(tmp_path, 5)
    assert await verified(tmp_path) == []


async def test_a_row_edited_with_the_sqlite3_shell_is_found(tmp_path: Path) -> None:
    await chain_of(tmp_path, 5)

    sqlite3_shell(
        tmp_path, "UPDATE audit SET body = replace(body, '\"denied\"', '\"ok\"') WHERE sequence = 3"
    )

    assert '"outcome":"ok"' in sqlite3_shell(tmp_path, "SELECT body FROM audit WHERE sequence = 3")
    assert await verified(tmp_path) == [(3, "changed")]


async def test_a_row_deleted_with_the_sqlite3_shell_is_found(tmp_path: Path) -> None:
    await chain_of(tmp_path, 5)

    sqlite3_shell(tmp_path, "DELETE FROM audit WHERE sequence = 2")

    assert await verified(tmp_path) == [(2, "missing")]


async def test_rows_swapped_with_the_sqlite3_shell_are_found(tmp_path: Path) -> None:
    await chain_of(tmp_path, 5)

    sqlite3_shell(
        tmp_path,
        "UPDATE audit SET sequence = -1 WHERE sequence = 2; UPDATE audit SET sequence = 2 WHERE sequence = 4;"
        " UPDATE audit SET sequence = 4 WHERE sequence = -1;",
    )

    assert await verified(tmp_path) == [(2, "reordered"), (4, "reordered")]


async def test_a_row_rewritten_with_a_fresh_hash_is_found_by_the_next_one(tmp_path: Path) -> None:
    """Editing a record and recomputing its hash still breaks the link from the record after it."""
    await chain_of(tmp_path, 4)
    async with SQLiteAuditLog.from_url(url(tmp_path)) as log:
        old = parse((await log.read(after=1, limit=1))[0].body)
    forged = seal(dataclasses.replace(old.record, outcome="ok"), old.sequence, old.previous)
    body = forged.body().decode().replace("'", "''")
    sqlite3_shell(tmp_path, f"UPDATE audit SET body = '{body}' WHERE sequence = 2")

    assert await verified(tmp_path) == [(2, "changed")]


async def test_an_unreadable_row_is_reported(tmp_path: Path) -> None:
    await chain_of(tmp_path, 3)
    sqlite3_shell(tmp_path, "UPDATE audit SET body = 'not json' WHERE sequence = 2")
    assert await verified(tmp_path) == [(2, "unreadable")]


@pytest.mark.parametrize("count", [1, 3])
async def test_verify_can_fail_for_every_record_it_is_given(tmp_path: Path, count: int) -> None:
    await chain_of(tmp_path, count)
    sqlite3_shell(
        tmp_path, f"UPDATE audit SET body = replace(body, 'alice', 'mallory') WHERE sequence = {count}"
    )
    assert await verified(tmp_path) == [(count, "changed")]
