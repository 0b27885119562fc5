"""What a log line is about: the execution, workflow, step, tenant and trace it belongs to, and
the node (process) that wrote it.

The process root binds ``node`` once its runtime exists; the engine and the worker bind the
others around the work they do (``with bound(...)``); a
log handler's formatter reads them with :func:`current` (the JSON formatter of
``orchestrator.observability.logs`` writes them on every line). The fields live in a
``ContextVar``, so each asyncio task sees its own: a step running in one task never labels the
lines of another, and nothing is shared between runtimes in one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("orchestrator_log_context", default=_EMPTY)


def current() -> Mapping[str, str]:
    """The fields bound in this task, innermost binding winning (empty outside any)."""
    return _context.get()


class bound:
    """Bind fields for the duration of a ``with`` block (None values are left out).

    A small class rather than a generator context manager: it runs once per command and step."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: str | None) -> None:
        self._fields = fields
        self._token: Token[Mapping[str, str]] | None = None

    def __enter__(self) -> None:
        merged = dict(_context.get())
        for name, value in self._fields.items():
            if value is not None:
                merged[name] = value
        self._token = _context.set(merged)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._token is not None:
            _context.reset(self._token)
            self._token = None
