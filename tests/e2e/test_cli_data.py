"""``orchestrator export | import | verify`` on SQLite files, through the real CLI entry point."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.settings import Settings
from orchestrator.stores import open_stores
from tests.data_workloads import as_bytes, histories, seed_sync, states


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[str, list[str]]:
    """A SQLite event log (and registry) holding real histories."""
    url = f"sqlite:///{tmp_path}/source.db"
    return url, seed_sync(url)


def _histories(url: str, ids: list[str]) -> dict[str, list[bytes]]:
    async def read() -> dict[str, list[bytes]]:
        async with open_stores(Settings(event_log_url=url)) as (log, _):
            found = await histories(log, ids)
        assert all(found.values())
        assert all(state is not None for state in states(found).values())
        return as_bytes(found)

    return asyncio.run(read())


def test_export_import_verify(
    seeded: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, ids = seeded
    dump = tmp_path / "dump.jsonl"
    target = f"sqlite:///{tmp_path}/target.db"

    assert main(["export", "--event-log", source, "--output", str(dump)]) == 0
    out = capsys.readouterr().out
    assert f"exported 5 definitions, {len(ids)} executions," in out and str(dump) in out
    assert not (tmp_path / "dump.jsonl.partial").exists()

    assert main(["import", str(dump), "--event-log", target]) == 0
    out = capsys.readouterr().out
    assert "definitions: 5 added, 0 already present" in out
    assert _histories(target, ids) == _histories(source, ids)

    assert main(["verify", "--event-log", target]) == 0
    assert f"verified {len(ids)} executions" in capsys.readouterr().out

    assert main(["import", str(dump), "--event-log", target, "--json"]) == 0  # idempotent
    again = json.loads(capsys.readouterr().out)
    assert again["ok"] and again["events_appended"] == 0 and again["definitions_unchanged"] == 5

    assert main(["verify", "--event-log", target, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["executions"] == len(ids) and report["problems"] == {}


def test_a_tampered_row_fails_verify_naming_execution_and_sequence(
    seeded: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = seeded
    path = source.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        victim, body = db.execute(
            "SELECT execution_id, body FROM events WHERE sequence = 3 AND type = 'StepSucceeded' LIMIT 1"
        ).fetchone()
        event = json.loads(body)
        event["data"]["output"] = {"amount": 1_000_000}
        db.execute(
            "UPDATE events SET body = ? WHERE execution_id = ? AND sequence = 3",
            (json.dumps(event).encode(), victim),
        )

    assert main(["verify", "--event-log", source]) == 1
    out = capsys.readouterr().out
    assert f"execution {victim}:" in out
    assert "error tampered at sequence 3" in out
    assert "1 error, 0 warnings (PROBLEMS FOUND)" in out

    assert main(["verify", "--event-log", source, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"]
    assert [(p["kind"], p["sequence"]) for p in report["problems"][victim]] == [("tampered", 3)]
    assert list(report["problems"]) == [victim]


def test_verify_finds_an_orphan_summary_and_filters_by_workflow(
    seeded: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = seeded
    with sqlite3.connect(source.removeprefix("sqlite:///")) as db:
        (victim,) = db.execute("SELECT execution_id FROM executions WHERE workflow = 'broken'").fetchone()
        db.execute("DELETE FROM events WHERE execution_id = ?", (victim,))
    assert main(["verify", "--event-log", source]) == 1
    out = capsys.readouterr().out
    assert f"execution {victim}:" in out and "orphan" in out and "no events" in out
    assert main(["verify", "--event-log", source, "--workflow", "greet"]) == 0
    assert "verified 2 executions" in capsys.readouterr().out


def test_export_to_stdout_and_import_from_stdin(
    seeded: tuple[str, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, _ = seeded
    assert main(["export", "--event-log", source, "--workflow", "parent"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert json.loads(lines[0])["kind"] == "header"
    assert json.loads(lines[-1]) == {"kind": "footer", "executions": 1, "events": 7, "definitions": 1}
    assert "exported 1 definitions, 1 executions, 7 events to stdout" in captured.err

    target = f"sqlite:///{tmp_path}/target.db"
    monkeypatch.setattr("sys.stdin", io.StringIO(captured.out))
    assert main(["import", "-", "--event-log", target, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events_appended"] == 7
    # a parent without its children verifies: children name their parent, not the other way
    assert main(["verify", "--event-log", target]) == 0
    assert "verified 1 executions, 7 events: 0 errors" in capsys.readouterr().out


def test_a_child_without_its_parent_fails_verify(
    seeded: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = seeded
    dump = tmp_path / "kid.jsonl"
    target = f"sqlite:///{tmp_path}/target.db"
    assert main(["export", "--event-log", source, "--workflow", "kid", "-o", str(dump)]) == 0
    assert main(["import", str(dump), "--event-log", target]) == 0
    capsys.readouterr()
    assert main(["verify", "--event-log", target]) == 1
    out = capsys.readouterr().out
    assert "error missing_parent: parent execution" in out and "does not exist" in out


def test_import_errors_are_one_line(
    seeded: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = seeded
    dump = tmp_path / "dump.jsonl"
    target = f"sqlite:///{tmp_path}/target.db"
    assert main(["export", "--event-log", source, "-o", str(dump)]) == 0
    lines = dump.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:7], lines[7][:40], *lines[8:]]) + "\n")
    capsys.readouterr()

    assert main(["import", str(bad), "--event-log", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: line 8: not JSON")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

    assert main(["import", str(tmp_path / "missing.jsonl"), "--event-log", target]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory"

    assert main(["import", str(dump), "--event-log", "nosuch://x"]) == 2
    assert capsys.readouterr().err.startswith("error: no event log backend for 'nosuch://x'")


def test_an_import_conflict_exits_1(
    seeded: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = seeded
    dump = tmp_path / "dump.jsonl"
    target = f"sqlite:///{tmp_path}/target.db"
    assert main(["export", "--event-log", source, "-o", str(dump)]) == 0
    assert main(["import", str(dump), "--event-log", target]) == 0
    records = [json.loads(line) for line in dump.read_text().splitlines()]
    changed = next(r for r in records if r["kind"] == "event" and r["event"]["sequence"] == 2)
    changed["event"]["time"] = "2001-01-01T00:00:00Z"
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(r) + "\n" for r in records))
    capsys.readouterr()

    assert main(["import", str(edited), "--event-log", target]) == 1
    out = capsys.readouterr().out
    subject = changed["event"]["subject"]
    assert "conflict: line " in out and f"{subject}: event 2 differs from the target's" in out
    assert main(["verify", "--event-log", target]) == 0  # the target was left as it was
