"""Durable files: written whole or not at all (exports and retention archives).

``atomic_text`` is for synchronous writers. Async code (a retention sweep in the server, an
export) writes through ``atomic_text_offloop`` instead: its writes collect in memory (a
:class:`Spool`) and every open, write, fsync and rename runs in a worker thread
(``asyncio.to_thread``), so the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TextIO

PARTIAL = ".partial"
SPOOL_CHARS = 1 << 20  # characters a Spool holds before ``drain`` moves them to the file


@contextlib.contextmanager
def atomic_text(path: str | Path) -> Iterator[TextIO]:
    """A text file to write ``path`` through: it is written beside the target as
    ``<name>.partial``, fsynced, renamed over the target, and the rename is made durable by
    fsyncing the directory (where the OS allows). If the block raises, the partial file is
    removed and the target is left as it was. The block may await (it runs in the caller's loop).
    """
    target = Path(path)
    partial = target.with_name(target.name + PARTIAL)
    try:
        with partial.open("w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    sync_directory(target.parent)


def sync_directory(folder: Path) -> None:
    """Make a rename or creation in ``folder`` durable; a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError):
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Spool(io.StringIO):
    """The writes to a file, held in memory until ``drain()`` moves them to it off the loop."""

    def __init__(self, file: TextIO) -> None:
        super().__init__()
        self.file = file

    async def drain(self, at_least: int = 0) -> None:
        """Write what is held to the file in a worker thread, once it is ``at_least`` characters."""
        if self.tell() == 0 or self.tell() < at_least:
            return
        text = self.getvalue()
        self.seek(0)
        self.truncate()
        await asyncio.to_thread(self.file.write, text)


async def drain(out: TextIO) -> None:
    """Let a Spool write what it holds once it holds ``SPOOL_CHARS`` (a no-op for other streams):
    what async writers call between batches, to bound the memory a Spool takes."""
    if isinstance(out, Spool):
        await out.drain(SPOOL_CHARS)


@contextlib.asynccontextmanager
async def atomic_text_offloop(path: str | Path) -> AsyncIterator[Spool]:
    """``atomic_text`` for async code: the block writes to a Spool (``await drain(out)`` between
    batches); the partial file's open, writes, fsync and rename, the directory's creation and
    fsync all run in worker threads. The same guarantee: the whole file, or the old one."""
    target = Path(path)
    partial = target.with_name(target.name + PARTIAL)
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    file = await asyncio.to_thread(partial.open, "w", encoding="utf-8")
    try:
        spool = Spool(file)
        yield spool
        await spool.drain()
        await asyncio.to_thread(_commit, file, partial, target)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(_discard, file, partial))
        raise


def _commit(file: TextIO, partial: Path, target: Path) -> None:
    with file:
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, target)
    sync_directory(target.parent)


def _discard(file: TextIO, partial: Path) -> None:
    with contextlib.suppress(OSError):
        file.close()
    with contextlib.suppress(OSError):
        partial.unlink()
