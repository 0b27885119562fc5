"""The CLI's Output: JSON only with --json, plain text off a terminal, rich tables and progress on one."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from orchestrator.cli import output
from orchestrator.cli.output import Output, ticking
from orchestrator.history.timeline import Table, format_table

ESC = "\x1b"
COLUMNS = ("ID", "STATUS", "DETAIL")
ROWS = [("e-1", "succeeded", None), ("e-22", "failed", "[bold]not markup[/bold]")]


def streams(**kwargs: object) -> tuple[Output, io.StringIO, io.StringIO]:
    stdout, stderr = io.StringIO(), io.StringIO()
    return Output(stdout=stdout, stderr=stderr, **kwargs), stdout, stderr  # type: ignore[arg-type]


def use_everything(out: Output) -> None:
    out.line("a line")
    out.lines(["more", "lines"])
    out.table(COLUMNS, ROWS)
    out.show(["text", Table(COLUMNS, tuple(ROWS))])
    with out.progress("working", total=3, unit="things") as advance:
        advance(1)
        advance(2)


def test_json_mode_emits_nothing_but_json_even_on_a_terminal() -> None:
    out, stdout, stderr = streams(json=True, tty=True)
    use_everything(out)
    out.value({"ok": True, "name": "ü"})
    assert json.loads(stdout.getvalue()) == {"ok": True, "name": "ü"}
    assert stderr.getvalue() == ""


def test_json_to_stderr_leaves_stdout_to_the_data() -> None:
    out, stdout, stderr = streams(json=True)
    out.value([1, 2], to_stderr=True)
    assert stdout.getvalue() == "" and json.loads(stderr.getvalue()) == [1, 2]


def test_off_a_terminal_the_text_is_plain_and_there_is_no_progress() -> None:
    out, stdout, stderr = streams(tty=False)
    assert not out.draws_tables and not out.shows_progress
    use_everything(out)
    table = format_table(COLUMNS, ROWS)
    assert stdout.getvalue().splitlines() == ["a line", "more", "lines", *table, "text", *table]
    assert ESC not in stdout.getvalue()
    assert stderr.getvalue() == ""


def test_streams_that_are_not_terminals_are_detected() -> None:
    out, _, _ = streams()  # StringIO.isatty() is False: the mode the tests and pipes get
    assert not out.draws_tables and not out.shows_progress


def test_on_a_terminal_a_table_is_drawn_by_rich() -> None:
    out, stdout, _ = streams(tty=True)
    assert out.draws_tables
    out.table(COLUMNS, ROWS)
    drawn = stdout.getvalue()
    assert ESC in drawn  # styled: the bold header, the coloured statuses
    assert "─" in drawn  # the rule under the header
    assert drawn.splitlines() != format_table(COLUMNS, ROWS)
    for cell in ("ID", "STATUS", "e-22", "succeeded", "failed", "[bold]not markup[/bold]"):
        assert cell in drawn  # values are text, never markup
    assert f"{ESC}[2m-" in drawn  # None shows as a dim dash


def test_on_a_terminal_progress_shows_label_count_and_rate_on_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(output, "REFRESH_SECONDS", 0.0)  # redraw at every advance
    out, stdout, stderr = streams(tty=True)
    with out.progress("exporting", total=4, unit="executions") as advance:
        for _ in range(4):
            advance(1)
    shown = stderr.getvalue()
    assert "exporting" in shown and "4/4 executions" in shown and "executions/s" in shown
    assert stdout.getvalue() == ""


def test_progress_without_a_total_counts_what_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "REFRESH_SECONDS", 0.0)
    out, _, stderr = streams(tty=True)
    with out.progress("verifying", unit="executions") as advance:
        advance(7)
    assert "7 executions" in stderr.getvalue()


def test_ticking_keeps_an_uncountable_wait_moving() -> None:
    calls: list[int] = []

    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "done"

    assert asyncio.run(ticking(slow(), calls.append, every=0.005)) == "done"
    assert calls and set(calls) == {0}
