"""Atomic, durable file writes: the whole file or the old one, never a torn one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.history import files
from orchestrator.history.files import atomic_text


def test_the_target_appears_whole_and_no_partial_file_is_left(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with atomic_text(target) as out:
        out.write("one\n")
        assert not target.exists()  # nothing is visible until the block ends
        assert (tmp_path / "out.jsonl.partial").exists()
        out.write("two\n")
    assert target.read_text(encoding="utf-8") == "one\ntwo\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_failing_write_keeps_the_old_file_and_removes_the_partial(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"), atomic_text(target) as out:
        out.write("half")
        raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_the_file_and_then_its_directory_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", recording_fsync)
    with atomic_text(tmp_path / "out.jsonl") as out:
        out.write("x")
    assert synced == [str(tmp_path / "out.jsonl.partial"), str(tmp_path)]
