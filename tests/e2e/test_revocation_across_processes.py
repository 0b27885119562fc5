"""A key revoked through one runtime is refused by another runtime sharing the same SQLite
store within the key cache time (``CACHE_SECONDS``, 5 s), and only because that cache is
bounded: with an unbounded cache the other runtime would accept the revoked key for good.
Each runtime opens the store on its own connection, as two processes do; the cache's clock is
a fake one, so the bound is checked exactly and without waiting."""

from __future__ import annotations

import math
from pathlib import Path

from orchestrator.auth.apikeys import CACHE_SECONDS, ApiKeyAuthenticator
from orchestrator.auth.control import access_control
from orchestrator.auth.principal import AuthenticationFailed
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def accepted(authenticator: ApiKeyAuthenticator, key: str) -> bool:
    try:
        return await authenticator.authenticate({"Authorization": f"Bearer {key}"}, {}) is not None
    except AuthenticationFailed as exc:
        assert exc.code == "key_revoked"
        return False


async def refused_after(tmp_path: Path, cache_seconds: float) -> float | None:
    """Seconds after its revocation (by runtime A) at which runtime B refuses the key, probing
    every 0.5 s for a minute; None when B still accepts it then."""
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/shared.db", retention_interval=0)
    async with Runtime(settings) as a, Runtime(settings) as b:
        assert a.access is not b.access
        revoker = access_control(a.access, settings)
        created = await revoker.keys.create("ci", "default", {"default": ["viewer"]})
        clock = Monotonic()
        server = ApiKeyAuthenticator(b.access, revoker.keys.hasher, cache_seconds=cache_seconds, monotonic=clock)
        assert await accepted(server, created.key)  # B has read and cached the record
        await revoker.keys.revoke(created.record.key_id)
        assert not await accepted(revoker.authenticators[0], created.key)  # A refuses at once
        for step in range(1, 121):
            clock.now += 0.5
            if not await accepted(server, created.key):
                return step * 0.5
    return None


async def test_another_runtime_refuses_a_revoked_key_within_the_cache_time(tmp_path: Path) -> None:
    after = await refused_after(tmp_path, CACHE_SECONDS)
    assert after is not None and after <= CACHE_SECONDS
    assert CACHE_SECONDS == 5.0  # the bound docs/security.md states


async def test_the_check_fails_with_an_unbounded_cache(tmp_path: Path) -> None:
    # The same probe against a cache that never expires: B accepts the revoked key for the whole
    # minute, so the assertion above would fail.
    assert await refused_after(tmp_path, math.inf) is None
