"""The SessionStore contract: each backend's test subclasses SessionStoreContract to say how to
build it (``make_store`` opens the same data when called again, for durable backends)."""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.ports import SessionStore, StoredSession


def stored(tenant: str = "acme", ttl: float = 600.0, **changes: object) -> StoredSession:
    now = time.time()
    values: dict[str, object] = {
        "session_id": uuid.uuid4().hex,
        "secret_hash": bytes(range(32)),
        "principal": '{"subject": "ada", "kind": "key", "tenant": "acme", "roles": {"acme": ["viewer"]}}',
        "tenant": tenant,
        "created_at": now,
        "expires_at": now + ttl,
    }
    values.update(changes)
    return StoredSession(**values)  # type: ignore[arg-type]


class SessionStoreContract(ABC):
    durable = True  # False: a new store does not see what an earlier one stored

    @abstractmethod
    async def make_store(self, tmp_path: Path) -> SessionStore:
        """A started store."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[SessionStore]:
        store = await self.make_store(tmp_path)
        try:
            yield store
        finally:
            await store.stop()

    async def test_a_stored_session_reads_back_whole(self, store: SessionStore) -> None:
        session = stored()
        await store.put(session)
        assert await store.get(session.session_id) == session

    async def test_an_unknown_session_is_none(self, store: SessionStore) -> None:
        assert await store.get(uuid.uuid4().hex) is None
        assert await store.revoke(uuid.uuid4().hex, time.time()) is None

    async def test_revoking_keeps_the_session_marked_and_the_first_time(self, store: SessionStore) -> None:
        session, other = stored(), stored()
        await store.put(session)
        await store.put(other)
        at = time.time()

        revoked = await store.revoke(session.session_id, at)
        again = await store.revoke(session.session_id, at + 5)

        assert revoked is not None and revoked.revoked_at == pytest.approx(at)
        assert again is not None and again.revoked_at == pytest.approx(at)
        found = await store.get(session.session_id)
        assert found is not None and found.revoked_at == pytest.approx(at)
        assert found.secret_hash == session.secret_hash
        untouched = await store.get(other.session_id)
        assert untouched is not None and untouched.revoked_at is None

    async def test_sessions_survive_a_reopen(self, store: SessionStore, tmp_path: Path) -> None:
        session = stored()
        await store.put(session)
        await store.revoke(session.session_id, time.time())
        reopened = await self.make_store(tmp_path)
        try:
            found = await reopened.get(session.session_id)
        finally:
            await reopened.stop()
        if self.durable:
            assert found is not None and found.revoked_at is not None
        else:
            assert found is None
