"""Blocking file I/O stays off the event loop: retention archives and exports open, write, fsync
and rename their files in worker threads. The same probe on the synchronous writer sees the loop's
thread, so it can tell the difference."""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import pytest

from orchestrator.history import archive, files
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition
from tests.e2e.test_retention import DAY, T0, Clock, _definition, _run


class Probe:
    """Which threads opened, wrote, fsynced and renamed files (through ``orchestrator.history``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: dict[str, set[int]] = defaultdict(set)
        real_open, real_fsync, real_replace = Path.open, os.fsync, os.replace
        probe = self

        def opening(path: Path, *args: Any, **kwargs: Any) -> Any:
            self.note("open")
            opened = real_open(path, *args, **kwargs)
            return Watched(opened, probe) if "w" in (args[0] if args else kwargs.get("mode", "r")) else opened

        def fsync(fd: int) -> None:
            self.note("fsync")
            real_fsync(fd)

        def replace(source: Any, target: Any) -> None:
            self.note("replace")
            real_replace(source, target)

        monkeypatch.setattr(Path, "open", opening)
        monkeypatch.setattr(files.os, "fsync", fsync)
        monkeypatch.setattr(files.os, "replace", replace)

    def note(self, what: str) -> None:
        self.threads[what].add(threading.get_ident())

    def on_loop_thread(self) -> list[str]:
        """What ran on the calling (event loop's) thread."""
        me = threading.get_ident()
        return sorted(what for what, threads in self.threads.items() if me in threads)


class Watched:
    """A written text file whose writes the probe sees."""

    def __init__(self, file: TextIO, probe: Probe) -> None:
        self.file, self.probe = file, probe

    def write(self, text: str) -> int:
        self.probe.note("write")
        return self.file.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def __enter__(self) -> Watched:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.file.close()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def text(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")


async def test_the_probe_sees_a_synchronous_writer_on_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = Probe(monkeypatch)
    with files.atomic_text(tmp_path / "sync.jsonl") as out:
        out.write("x\n")
    assert probe.on_loop_thread() == ["fsync", "open", "replace", "write"]


async def test_the_offloop_writer_touches_the_disk_only_from_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = Probe(monkeypatch)
    target = tmp_path / "deep" / "er" / "out.jsonl"
    async with files.atomic_text_offloop(target) as out:
        out.write("one\n")
        await files.drain(out)  # below SPOOL_CHARS: held
        assert not target.exists() and "write" not in probe.threads
        out.write("two\n" * files.SPOOL_CHARS)
        await files.drain(out)
        assert "write" in probe.threads  # moved to the partial file
    assert probe.on_loop_thread() == []
    assert set(probe.threads) == {"open", "write", "fsync", "replace"}
    assert target.read_text(encoding="utf-8").startswith("one\ntwo\n")
    assert names(target.parent) == ["out.jsonl"]


async def test_a_failing_offloop_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="boom"):
        async with files.atomic_text_offloop(target) as out:
            out.write("half")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old\n"
    assert names(tmp_path) == ["out.jsonl"]


async def test_retention_archives_and_exports_are_written_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    settings = Settings(event_log_url="memory://", retention_interval=0, archive_dir=str(tmp_path / "archive"))
    async with Runtime(settings, clock=clock) as runtime:
        await runtime.register(parse_definition(_definition("kept", {"days": 1, "archive": True})))
        finished = [await _run(runtime, "kept") for _ in range(2)]
        probe = Probe(monkeypatch)
        report = await archive.export_to_file(runtime.log, runtime.registry, tmp_path / "export.jsonl")
        assert report.executions == 2
        clock.now = T0 + 2 * DAY
        swept = await runtime.retention.sweep()
        assert sorted(swept.expired) == sorted(finished) and len(swept.archived) == 2
    assert probe.on_loop_thread() == []
    assert {"open", "write", "fsync", "replace"} <= set(probe.threads)
    assert all(text(path).count('"kind":"event"') > 3 for path in swept.archived)
