"""Durable files: written whole or not at all (exports and retention archives)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

PARTIAL = ".partial"


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
