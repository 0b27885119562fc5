"""``orchestrator audit list | export | verify`` and the audit chain in ``orchestrator verify``,
straight on a SQLite store, with the rows edited by the ``sqlite3`` shell."""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.audit.record import Actor, Resource, parse
from orchestrator.cli.main import main
from orchestrator.settings import Settings
from orchestrator.stores import open_audit_trail


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A store holding five audit records: alice starts and cancels, bob is denied."""
    url = f"sqlite:///{tmp_path}/audit.db"

    async def fill() -> None:
        async with open_audit_trail(Settings(event_log_url=url)) as trail:
            for i in range(2):
                await trail.record(
                    "executions:start",
                    actor=Actor("alice", "key", "k1"),
                    resource=Resource("executions", f"e{i}"),
                )
            await trail.record(
                "executions:cancel", actor="key:alice", resource=Resource("executions", "e0"), reason="asked"
            )
            await trail.record(
                "executions:cancel",
                actor="key:bob",
                resource=Resource("executions", "e1"),
                outcome="denied",
                tenant="acme",
            )
            await trail.record("keys:create", actor="cli:root", resource=Resource("keys", "k2"))

    asyncio.run(fill())
    return url


def sqlite3_shell(url: str, sql: str) -> None:
    sqlite3 = shutil.which("sqlite3")
    assert sqlite3 is not None, "the sqlite3 shell is needed"
    subprocess.run([sqlite3, url.removeprefix("sqlite:///"), sql], check=True)


def test_list_filters_and_shows_a_table(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "list", "--event-log", store, "--actor", "key:alice", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["sequence"], r["action"]) for r in listed["items"]] == [
        (1, "executions:start"), (2, "executions:start"), (3, "executions:cancel"),
    ]  # fmt: skip
    assert (
        main(["audit", "list", "--event-log", store, "--action", "executions:cancel", "--tenant", "acme"])
        == 0
    )
    table = capsys.readouterr().out
    assert "key:bob" in table and "denied" in table and "alice" not in table
    assert main(["audit", "list", "--event-log", store, "--limit", "2", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert len(page["items"]) == 2 and page["next_cursor"] == 2
    assert main(["audit", "list", "--event-log", store, "--since", "not a time"]) == 2


def test_export_as_jsonl_keeps_the_verifiable_bodies_and_as_csv_a_row_each(
    store: str, tmp_path: Path
) -> None:
    lines = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--event-log", store, "--format", "jsonl", "--out", str(lines)]) == 0
    exported = [parse(line.encode()) for line in lines.read_text().splitlines()]
    assert [s.sequence for s in exported] == [1, 2, 3, 4, 5]
    assert exported[1].previous == exported[0].hash

    table = tmp_path / "audit.csv"
    assert (
        main(
            [
                "audit",
                "export",
                "--event-log",
                store,
                "--format",
                "csv",
                "-o",
                str(table),
                "--action",
                "executions:*",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(table.open(newline="")))
    assert [(r["sequence"], r["actor_subject"], r["outcome"], r["reason"]) for r in rows] == [
        ("1", "alice", "ok", ""), ("2", "alice", "ok", ""), ("3", "alice", "ok", "asked"), ("4", "bob", "denied", ""),
    ]  # fmt: skip
    assert rows[0]["credential_id"] == "k1" and rows[3]["tenant"] == "acme"


def test_export_to_stdout(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "export", "--event-log", store]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5 and "exported 5 audit records" in captured.err


def test_verify_and_audit_verify_fail_on_an_edited_row(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", "--event-log", store]) == 0
    assert "5 records" in capsys.readouterr().out
    assert main(["verify", "--event-log", store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["audit"]["ok"] is True

    sqlite3_shell(store, "UPDATE audit SET body = replace(body, 'denied', 'ok') WHERE sequence = 4")

    assert main(["audit", "verify", "--event-log", store]) == 1
    assert "changed at 4: its content no longer matches its hash" in capsys.readouterr().out
    assert main(["verify", "--event-log", store]) == 1
    out = capsys.readouterr().out
    assert "audit chain: 5 records" in out and "BROKEN" in out
    assert main(["verify", "--event-log", store, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and report["audit"]["problems"][0]["sequence"] == 4


def test_verify_names_a_deleted_row(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    sqlite3_shell(store, "DELETE FROM audit WHERE sequence = 2")
    assert main(["audit", "verify", "--event-log", store, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(p["sequence"], p["kind"]) for p in report["problems"]] == [(2, "missing")]
