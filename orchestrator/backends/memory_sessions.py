"""In-memory session store (``memory://``): one process only, gone when it stops."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import StoredSession

MAX_SESSIONS = 100_000  # expired sessions are swept when a put would pass this


class MemorySessionStore(Lifecycle):
    """Sessions in a dict; expired ones are dropped when the store grows past ``MAX_SESSIONS``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, StoredSession] = {}

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], float] = time.time) -> MemorySessionStore:
        if url.rstrip("/") != "memory:":
            raise ValueError(f"{url!r}: the memory session store takes no options")
        return cls(clock)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def put(self, session: StoredSession) -> None:
        if len(self._sessions) >= MAX_SESSIONS:
            now = self._clock()
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
        self._sessions[session.session_id] = session

    async def get(self, session_id: str) -> StoredSession | None:
        return self._sessions.get(session_id)

    async def revoke(self, session_id: str, at: float) -> StoredSession | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.revoked_at is None:
            session = self._sessions[session_id] = dataclasses.replace(session, revoked_at=at)
        return session
