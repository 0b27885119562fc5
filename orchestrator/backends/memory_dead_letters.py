"""Parked commands in memory: the dead letters of the in-process transport.

One process, so the store lives as long as the process: the newest ``limit`` (10,000) parked
commands, ids counting up from 0. ``redrive`` submits the command object again through the
callback it was built with (the transport's ``submit``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

from orchestrator.core.commands import Command
from orchestrator.core.timefmt import rfc3339
from orchestrator.ports import DeadLetter, DeadLetterPage, UnknownDeadLetter

Submit = Callable[[Command], Awaitable[None]]
DEFAULT_LIMIT = 10_000


def parse_cursor(cursor: str | None) -> int:
    """The first id a page starts at; ValueError for a cursor this store did not give."""
    if cursor is None:
        return 0
    if not _position(cursor):
        raise ValueError(f"cursor {cursor!r} is not a dead-letter position")
    return int(cursor)


def _position(text: str) -> bool:
    """ASCII digits that fit 64 bits (``str.isdigit`` alone takes "²", which int() refuses)."""
    return text.isascii() and text.isdigit() and len(text) <= 19


class MemoryDeadLetters:
    """The ``DeadLetters`` port in memory, for one process."""

    def __init__(self, submit: Submit, clock: Callable[[], float], limit: int = DEFAULT_LIMIT) -> None:
        self._submit = submit
        self._clock = clock
        self._limit = limit
        self._letters: OrderedDict[int, tuple[DeadLetter, Command]] = OrderedDict()
        self._next = 0

    async def park(
        self, command: Command, error: BaseException, attempts: int, tenant: str = "default"
    ) -> DeadLetter:
        letter = DeadLetter(
            id=str(self._next),
            execution_id=command.execution_id,
            command_type=type(command).__name__,
            command_id=command.command_id,
            error_type=type(error).__name__,
            error_message=str(error)[:1000],
            attempts=attempts,
            parked_at=rfc3339(self._clock()),
            tenant=tenant,
        )
        self._letters[self._next] = (letter, command)
        self._next += 1
        while len(self._letters) > self._limit:
            self._letters.popitem(last=False)
        return letter

    async def list(self, limit: int = 100, cursor: str | None = None, tenant: str | None = None) -> DeadLetterPage:
        first = parse_cursor(cursor)
        found = [
            letter
            for position, (letter, _) in self._letters.items()
            if position >= first and tenant in (None, letter.tenant)
        ]
        more = len(found) > limit
        items = found[:limit]
        return DeadLetterPage(items, str(int(items[-1].id) + 1) if more else None)

    async def redrive(self, letter_id: str, tenant: str | None = None) -> DeadLetter:
        parked = self._letters.get(int(letter_id)) if _position(letter_id) else None
        if parked is None or tenant not in (None, parked[0].tenant):
            raise UnknownDeadLetter(f"no dead letter {letter_id!r}")
        letter, command = parked
        await self._submit(command)
        return letter
