"""One client per named connection, opened on first use and closed with the connector.

The publishing connectors (``kafka.publish``, ``amqp.publish``) keep a producer or a connection
per connection name for the life of the process: opening one per step would cost a TCP and
protocol handshake per message and, for Kafka, a new idempotent-producer id each time. Nothing
is opened before the first step that names a connection, so a process that never publishes
never connects. Concurrent first calls for one name open one client (a lock per name); a client
that turned out broken is ``discard``-ed and the next call opens a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from orchestrator.lifecycle import Lifecycle

if TYPE_CHECKING:
    from orchestrator.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CLOSE_TIMEOUT = 10.0  # a client that cannot say goodbye within this is abandoned


class ConnectionPool(Lifecycle, Generic[T]):
    """Clients by connection name (case-insensitive, like ``Settings.connection``)."""

    def __init__(
        self,
        what: str,
        open_client: Callable[[str], Awaitable[T]],
        close_client: Callable[[T], Awaitable[None]],
    ) -> None:
        self._what = what
        self._open_client = open_client
        self._close_client = close_client
        self._clients: dict[str, T] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._running = False
        self.opened = 0  # clients opened since construction (one per name unless one was discarded)

    def __len__(self) -> int:
        return len(self._clients)

    def names(self) -> list[str]:
        """The connections with an open client."""
        return sorted(self._clients)

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        clients, self._clients = self._clients, {}
        await asyncio.gather(*(self._close(name, client) for name, client in clients.items()))

    async def get(self, name: str) -> T:
        """The client of connection ``name``, opened now if this is its first use."""
        key = name.lower()
        client = self._clients.get(key)
        if client is not None:
            return client
        self._check_running()
        async with self._locks.setdefault(key, asyncio.Lock()):
            client = self._clients.get(key)
            if client is not None:
                return client
            client = await self._open_client(name)
            self.opened += 1
            if not self._running:  # stopped while opening: do not leak the client
                await self._close(key, client)
                self._check_running()
            self._clients[key] = client
            log.info("%s: opened connection %r", self._what, key)
            return client

    async def discard(self, name: str, client: T) -> None:
        """Close ``client`` if it is still the one pooled for ``name``; the next ``get`` opens anew."""
        key = name.lower()
        if self._clients.get(key) is client:
            del self._clients[key]
            await self._close(key, client)

    def _check_running(self) -> None:
        if not self._running:
            raise RuntimeError(f"{self._what} is not started")

    async def _close(self, name: str, client: T) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._close_client(client)
        except Exception as exc:  # closing is best effort: the broker may be gone
            log.warning("%s: closing connection %r failed: %s", self._what, name, exc)
        else:
            log.info("%s: closed connection %r", self._what, name)


class PooledConnector(Lifecycle, Generic[T]):
    """A connector keeping one client per connection name in a ``ConnectionPool``, started and
    stopped with it. Subclasses name themselves and open and close their clients."""

    name: str

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings  # None: read ORCHESTRATOR_CONNECTION_* when a connection is first used
        self.pool: ConnectionPool[T] = ConnectionPool(self.name, self._open, self._close_client)

    async def start(self) -> None:
        await self.pool.start()

    async def stop(self) -> None:
        await self.pool.stop()

    async def _open(self, connection: str) -> T:
        raise NotImplementedError

    async def _close_client(self, client: T) -> None:
        raise NotImplementedError


async def close_quietly(close: Callable[[], Awaitable[object]]) -> None:
    """Run a close that may fail because the other side is gone; errors are not interesting."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await close()
