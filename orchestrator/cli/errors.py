"""The CLI's one error: a line to print (plus details), with the process exit code."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.validation import Problem


class CliError(Exception):
    """A failure to report in one line (plus ``details``), with the process exit code:
    1 for a runtime failure, 2 for a usage, input or definition error."""

    def __init__(self, message: str, code: int = 1, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.details = list(details)


def problem_lines(problems: Sequence[Problem]) -> list[str]:
    """``location: message`` per problem, as the details of a CliError."""
    return [f"{p.location}: {p.message}" for p in problems]
