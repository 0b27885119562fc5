"""Where a command's results go: JSON, a terminal (rich tables and progress), or plain text.

Three modes, chosen once per command from ``--json`` and whether stdout and stderr are terminals:

- ``--json``: stdout carries JSON values only; text, tables and progress are dropped.
- a terminal: tables are drawn by ``rich`` on stdout; long work shows a progress bar (count,
  rate, elapsed time) on stderr, erased when the work ends. Tables need stdout to be a terminal,
  progress needs stderr to be one, so ``orchestrator export > dump.jsonl`` still shows progress.
- otherwise (a pipe, a file, the tests): plain text that scripts can parse, columns aligned by
  ``format_table``, no escape codes and no progress.

``rich`` loads only when something is drawn on a terminal. Its progress display refreshes as the
work advances (``auto_refresh=False``): rich would otherwise start a refresh thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from orchestrator.history.timeline import Block, Table, format_table

if TYPE_CHECKING:
    from rich.console import Console

Advance = Callable[[int], None]
T = TypeVar("T")
REFRESH_SECONDS = 0.1  # at most this often the progress display is redrawn
STYLES = {  # cells drawn in colour on a terminal
    "succeeded": "green",
    "ok": "green",
    "running": "cyan",
    "queued": "magenta",
    "failed": "red",
    "diverged": "red",
    "cancelled": "yellow",
}


def _ignore(count: int) -> None:
    """``advance`` when no progress is shown."""


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Output:
    """The output of one command: ``Output(json=args.json)``.

    ``tty`` forces the terminal mode on (``True``) or off (``False``) for both streams instead of
    asking them; ``stdout`` and ``stderr`` default to the process's streams at construction, so a
    later redirection (``run --json`` moves what steps print to stderr) does not move the results.
    """

    def __init__(
        self,
        json: bool = False,
        tty: bool | None = None,
        *,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json = json
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self._tty = tty
        self._consoles: dict[int, Console] = {}

    @property
    def draws_tables(self) -> bool:
        """Tables are drawn by rich: stdout is a terminal and this is not ``--json``."""
        return not self.json and self._terminal(self.stdout)

    @property
    def shows_progress(self) -> bool:
        """Progress is shown: stderr is a terminal and this is not ``--json``."""
        return not self.json and self._terminal(self.stderr)

    # -- values and text ---------------------------------------------------------------------

    def value(self, value: Any, *, to_stderr: bool = False) -> None:
        """One JSON document (on stderr when stdout carries something else, e.g. an export)."""
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        print(text, file=self.stderr if to_stderr else self.stdout, flush=to_stderr)

    def line(self, text: str = "") -> None:
        """A line of text on stdout (dropped with ``--json``)."""
        if not self.json:
            print(text, file=self.stdout)

    def lines(self, lines: Iterable[str]) -> None:
        for text in lines:
            self.line(text)

    def note(self, text: str) -> None:
        """A line on stderr, at once: progress notes and errors, whatever the mode."""
        print(text, file=self.stderr, flush=True)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Rows under ``columns``; None shows as ``-``."""
        if self.json:
            return
        if not self.draws_tables:
            self.lines(format_table(columns, rows))
            return
        from rich import box
        from rich.table import Table as RichTable
        from rich.text import Text

        drawn = RichTable(
            box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False, collapse_padding=True
        )
        for index, column in enumerate(columns):  # only the last (free text) column wraps
            drawn.add_column(column, no_wrap=index < len(columns) - 1, overflow="fold")
        for row in rows:
            drawn.add_row(
                *(
                    Text("-", style="dim")
                    if cell is None
                    else Text(str(cell), style=STYLES.get(str(cell), ""))
                    for cell in row
                )
            )
        self._console(self.stdout).print(drawn)

    def show(self, blocks: Iterable[Block]) -> None:
        """Lines and tables in order (``orchestrator.history.timeline.blocks`` and the like)."""
        for block in blocks:
            if isinstance(block, Table):
                self.table(block.headers, block.rows)
            else:
                self.line(block)

    # -- progress ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def progress(self, label: str, total: int | None = None, unit: str = "") -> Iterator[Advance]:
        """Yields ``advance(n)``: the body calls it as ``n`` more ``unit`` are done. On a terminal
        stderr shows ``label``, a bar (pulsing while ``total`` is unknown), the count, the rate and
        the elapsed time until the body ends; otherwise ``advance`` does nothing."""
        if not self.shows_progress:
            yield _ignore
            return
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        shown = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self._console(self.stderr),
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        with shown:
            task = shown.add_task(label, total=total, count=_count(0, total, unit), rate="")
            last = time.monotonic()

            def advance(count: int) -> None:
                nonlocal last
                shown.advance(task, count)
                now = time.monotonic()
                if now - last < REFRESH_SECONDS:
                    return
                state = shown.tasks[0]  # the only task
                done = int(state.completed)
                rate = f"{state.speed:,.1f} {unit}/s".strip() if state.speed and unit else ""
                shown.update(task, count=_count(done, total, unit), rate=rate)
                shown.refresh()
                last = now

            shown.refresh()
            yield advance

    # -- internals ---------------------------------------------------------------------------

    def _terminal(self, stream: TextIO) -> bool:
        return is_terminal(stream) if self._tty is None else self._tty

    def _console(self, stream: TextIO) -> Console:
        console = self._consoles.get(id(stream))
        if console is None:
            from rich.console import Console

            console = self._consoles[id(stream)] = Console(file=stream, force_terminal=True, highlight=False)
        return console


def _count(done: int, total: int | None, unit: str) -> str:
    """``3/10 executions``, or ``3 executions`` while the total is unknown."""
    if not unit:
        return ""
    return f"{done:,}/{total:,} {unit}" if total is not None else f"{done:,} {unit}"


async def ticking(work: Awaitable[T], advance: Advance, every: float = REFRESH_SECONDS) -> T:
    """Await ``work`` (one long request, nothing to count) calling ``advance(0)`` every ``every``
    seconds, so the progress display keeps moving."""
    if advance is _ignore:
        return await work
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            advance(0)
    finally:
        task.cancel()  # no-op once done; stops the request when interrupted
