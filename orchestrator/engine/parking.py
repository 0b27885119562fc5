"""Poison commands: retried a bounded number of times, then parked as dead letters.

The transport hands every command it delivers to :class:`CommandParking` (the runtime wraps
``Engine.handle_quietly`` with it). A failure of the infrastructure is raised to the transport,
which retries it with backoff and holds its position: an outage must never discard a command,
and a broken backend would otherwise park every command. That is ``BackendUnavailable``,
``ConcurrencyError`` after the engine's own retries, ``OSError``, ``TimeoutError``, and anything a
backend's driver raises itself (``cassandra``, ``aiokafka``, ``sqlite3``). Any other exception (a
definition that cannot be loaded, a record that does not make sense, a bug) is deterministic as
far as we can tell: the command is tried again up to ``RetryPolicy.attempts`` times, then parked
in the :class:`~orchestrator.ports.DeadLetters` store with its reason, and the handler returns,
so the transport moves on (Kafka commits past it). Parked commands are listed and redriven
through the API and the CLI, each within the tenant of its execution (a start's own tenant, else
the execution's as the executions index knows it; ``default`` when neither is known).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from orchestrator.core.commands import Command, StartExecution
from orchestrator.ports import BackendUnavailable, ConcurrencyError, DeadLetters, ExecutionSummary

log = logging.getLogger(__name__)
Handler = Callable[[Command], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
Verdict = Literal["raise", "retry", "park"]
TRANSIENT: tuple[type[BaseException], ...] = (BackendUnavailable, ConcurrencyError, OSError, TimeoutError)
DRIVERS = ("cassandra", "aiokafka", "kafka", "sqlite3", "aiosqlite")  # their errors are the backend's


def transient(error: BaseException) -> bool:
    """An outage or a broken backend, not a problem of the command: never parked."""
    module = type(error).__module__.partition(".")[0]
    return isinstance(error, TRANSIENT) or module in DRIVERS


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing command is tried before it is parked, and how long between tries."""

    attempts: int = 5
    first_delay: float = 0.2  # seconds before the second attempt; doubles each time
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a command must be tried at least once, not {self.attempts} times")

    def verdict(self, error: BaseException, attempt: int) -> Verdict:
        """After ``attempt`` (1, 2, ...) failed with ``error``: raise it to the transport (transient),
        try again, or park the command."""
        if transient(error):
            return "raise"
        return "retry" if attempt < self.attempts else "park"

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` before the next one."""
        return min(self.first_delay * 2.0 ** (attempt - 1), self.max_delay)


class SummaryIndex(Protocol):
    async def summary(self, execution_id: str) -> ExecutionSummary | None: ...


async def tenant_of(command: Command, index: SummaryIndex | None) -> str:
    """The tenant of the execution a command is for (``default`` when it is not known)."""
    if isinstance(command, StartExecution):
        return command.tenant
    try:
        summary = None if index is None else await index.summary(command.execution_id)
    except Exception:  # parking must not fail on a lookup; the letter is still kept
        log.warning("no tenant for the parked command of %s", command.execution_id, exc_info=True)
        summary = None
    return "default" if summary is None else summary.tenant


class CommandParking:
    """A command handler that retries deterministic failures a bounded number of times, then parks."""

    def __init__(
        self,
        handler: Handler,
        dead_letters: DeadLetters,
        policy: RetryPolicy | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        index: SummaryIndex | None = None,
    ) -> None:
        self._handler = handler
        self.dead_letters = dead_letters
        self.index = index  # where a parked command's tenant is looked up
        self.policy = policy or RetryPolicy()
        self._sleep = sleep

    async def __call__(self, command: Command) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(command)
                return
            except Exception as exc:
                verdict = self.policy.verdict(exc, attempt)
                if verdict == "raise":
                    raise
                kind = type(command).__name__
                if verdict == "park":
                    letter = await self.dead_letters.park(command, exc, attempt, await tenant_of(command, self.index))
                    log.error(
                        "%s for %s failed %d times (%s: %s); parked as dead letter %s",
                        kind, command.execution_id, attempt, type(exc).__name__, exc, letter.id,
                    )  # fmt: skip
                    return
                delay = self.policy.delay(attempt)
                log.warning(
                    "%s for %s failed (%s: %s); attempt %d of %d in %.1fs",
                    kind, command.execution_id, type(exc).__name__, exc, attempt + 1,
                    self.policy.attempts, delay, exc_info=attempt == 1,
                )  # fmt: skip
                await self._sleep(delay)
