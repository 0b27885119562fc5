"""API keys: the format (prefix, id, secret, checksum) refused before any lookup when wrong,
keyed hashes only, expiry, revocation, rotation with overlap, last-used writes throttled."""

from __future__ import annotations

import re

import pytest

from orchestrator.access_ports import ApiKeyRecord
from orchestrator.auth.apikeys import (
    ApiKeyAuthenticator,
    KeyService,
    KeyStateError,
    UnknownKey,
    key_view,
    parse_duration,
)
from orchestrator.auth.keys import KEY_PATTERN, Hasher, KeyMalformed, format_key, new_key, parse_key
from orchestrator.auth.principal import AuthenticationFailed
from orchestrator.backends.memory_access import MemoryAccessStore


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryAccessStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.touches: list[tuple[str, float]] = []

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        self.gets += 1
        return await super().get_key(key_id)

    async def touch_key(self, key_id: str, used_at: float) -> None:
        self.touches.append((key_id, used_at))
        await super().touch_key(key_id, used_at)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def setup(pepper: bytes = b"pepper") -> tuple[CountingStore, KeyService, ApiKeyAuthenticator, Clock]:
    store, clock = CountingStore(), Clock()
    service = KeyService(store, Hasher(pepper), clock)
    auth = ApiKeyAuthenticator(store, Hasher(pepper), clock=clock, cache_seconds=0.0)
    service.changed.append(auth.forget)
    return store, service, auth, clock


def test_a_key_is_prefix_id_secret_checksum_and_scanners_can_match_it() -> None:
    parsed, text = new_key()
    assert re.fullmatch(r"orch_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}", text)
    assert KEY_PATTERN.fullmatch(text) and parse_key(text) == parsed
    assert text == format_key(parsed.key_id, parsed.secret)
    assert new_key()[1] != text


@pytest.mark.parametrize("mangle", [
    lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),  # checksum character changed
    lambda k: k[:20] + ("x" if k[20] != "x" else "y") + k[21:],  # a secret character changed
    lambda k: k[:-1],  # truncated
    lambda k: "ghp_" + k[5:],  # another issuer
    lambda k: k.replace("_", "-"),
    lambda k: k + " ",
])  # fmt: skip
def test_a_malformed_key_or_bad_checksum_is_refused(mangle: object) -> None:
    _, text = new_key()
    assert callable(mangle)
    with pytest.raises(KeyMalformed):
        parse_key(mangle(text))


async def test_a_bad_checksum_is_refused_without_a_store_lookup() -> None:
    store, service, auth, _ = setup()
    created = await service.create("ci", "default", {"default": ["viewer"]})
    bad = created.key[:-1] + ("A" if created.key[-1] != "A" else "B")
    with pytest.raises(AuthenticationFailed) as failed:
        await auth.authenticate(bearer(bad), {})
    assert failed.value.code == "malformed_key" and store.gets == 0
    assert (await auth.authenticate(bearer(created.key), {})) is not None and store.gets == 1


async def test_only_a_keyed_hash_is_stored_and_the_key_authenticates() -> None:
    store, service, auth, _ = setup()
    created = await service.create("ci", "acme", {"acme": ["operator"]}, owner="ada", created_by="cli:ada")
    record = await store.get_key(created.record.key_id)
    assert record is not None and parse_key(created.key).secret not in repr(record.to_dict())
    assert record.digest == Hasher(b"pepper").digest(parse_key(created.key).secret)
    assert "digest" not in key_view(record, 0.0)
    principal = await auth.authenticate(bearer(created.key), {})
    assert principal is not None
    assert (principal.subject, principal.kind, principal.tenant) == ("ada", "key", "acme")
    assert principal.credential_id == record.key_id and principal.roles_in("acme") == ("operator",)
    assert principal.actor == "key:ada"


async def test_a_service_account_is_a_key_without_owner() -> None:
    _, service, auth, _ = setup()
    created = await service.create("deployer", "default", {"default": ["developer"]})
    principal = await auth.authenticate(bearer(created.key), {})
    assert principal is not None and created.record.owner is None and principal.subject == "deployer"


async def test_requests_without_our_key_are_left_to_other_authenticators() -> None:
    _, _, auth, _ = setup()
    assert await auth.authenticate({}, {}) is None
    assert await auth.authenticate({"Authorization": "Basic dXNlcjpwYXNz"}, {}) is None
    assert await auth.authenticate({"Authorization": "Bearer eyJhbGciOi.x.y"}, {}) is None


async def test_an_unknown_or_wrong_key_or_another_pepper_is_refused() -> None:
    _, service, auth, _ = setup()
    created = await service.create("ci", "default", {"default": ["viewer"]})
    _, stranger = new_key()
    with pytest.raises(AuthenticationFailed, match="unknown") as failed:
        await auth.authenticate(bearer(stranger), {})
    assert failed.value.code == "unknown_key"
    forged = format_key(created.record.key_id, new_key()[0].secret)  # a valid shape, wrong secret
    with pytest.raises(AuthenticationFailed) as failed:
        await auth.authenticate(bearer(forged), {})
    assert failed.value.code == "invalid_key"
    other = ApiKeyAuthenticator(service.store, Hasher(b"another pepper"), cache_seconds=0.0)
    with pytest.raises(AuthenticationFailed) as failed:
        await other.authenticate(bearer(created.key), {})
    assert failed.value.code == "invalid_key"


async def test_an_expired_key_is_refused() -> None:
    _, service, auth, clock = setup()
    created = await service.create("short", "default", {"default": ["viewer"]}, expires_in=parse_duration("1h"))
    clock.now += 3599
    assert await auth.authenticate(bearer(created.key), {}) is not None
    clock.now += 1
    with pytest.raises(AuthenticationFailed) as failed:
        await auth.authenticate(bearer(created.key), {})
    assert failed.value.code == "key_expired"


async def test_a_revoked_key_is_refused_at_once_and_kept() -> None:
    store, service, _, _ = setup()
    auth = ApiKeyAuthenticator(store, Hasher(b"pepper"), cache_seconds=60.0)  # cached...
    service.changed.append(auth.forget)  # ...but this process forgets it on revocation
    created = await service.create("ci", "default", {"default": ["viewer"]})
    assert await auth.authenticate(bearer(created.key), {}) is not None
    revoked = await service.revoke(created.record.key_id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationFailed) as failed:
        await auth.authenticate(bearer(created.key), {})
    assert failed.value.code == "key_revoked"
    assert [k.key_id for k in await service.list()] == [created.record.key_id]  # never deleted
    assert (await service.revoke(created.record.key_id)).revoked_at == revoked.revoked_at
    with pytest.raises(KeyStateError):
        await service.rotate(created.record.key_id)


async def test_rotation_overlaps_then_the_old_key_expires() -> None:
    _, service, auth, clock = setup()
    old = await service.create("ci", "acme", {"acme": ["operator"]}, expires_in=30 * 86_400, owner="ada")
    new, retired = await service.rotate(old.record.key_id, overlap=3600)
    assert retired.replaced_by == new.record.key_id and new.record.rotated_from == old.record.key_id
    assert (new.record.name, new.record.tenant, new.record.roles, new.record.owner) == (
        "ci", "acme", {"acme": ("operator",)}, "ada",
    )  # fmt: skip
    assert new.record.expires_at == clock.now + 30 * 86_400  # the same lifetime
    clock.now += 3599
    assert await auth.authenticate(bearer(old.key), {}) is not None  # both work meanwhile
    assert await auth.authenticate(bearer(new.key), {}) is not None
    clock.now += 1
    with pytest.raises(AuthenticationFailed) as failed:
        await auth.authenticate(bearer(old.key), {})
    assert failed.value.code == "key_expired"
    assert await auth.authenticate(bearer(new.key), {}) is not None
    with pytest.raises(KeyStateError):
        await service.rotate(old.record.key_id)


async def test_rotation_never_extends_an_old_key_that_expires_sooner() -> None:
    _, service, _, clock = setup()
    old = await service.create("ci", "default", {"default": ["viewer"]}, expires_in=600)
    _, retired = await service.rotate(old.record.key_id, overlap=86_400)
    assert retired.expires_at == clock.now + 600


async def test_last_used_is_written_at_most_once_a_minute() -> None:
    store, service, auth, clock = setup()
    created = await service.create("ci", "default", {"default": ["viewer"]})
    for _ in range(50):
        await auth.authenticate(bearer(created.key), {})
        clock.now += 1
    assert len(store.touches) == 1  # 50 requests within 50 seconds
    clock.now += 20
    await auth.authenticate(bearer(created.key), {})
    assert len(store.touches) == 2
    record = await store.get_key(created.record.key_id)
    assert record is not None and record.last_used_at == clock.now


async def test_unknown_ids_and_tenants() -> None:
    _, service, _, _ = setup()
    created = await service.create("ci", "acme", {"acme": ["viewer"]})
    with pytest.raises(UnknownKey):
        await service.get("AAAAAAAAAAAA")
    with pytest.raises(UnknownKey):
        await service.revoke(created.record.key_id, tenant="other")
    with pytest.raises(ValueError):
        await service.create("ci", "acme", {"acme": []})


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("30d", 2_592_000)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "1y", "soon"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
