"""API keys: creating, listing, revoking and rotating them (:class:`KeyService`), and checking
the ``Authorization: Bearer orch_...`` header of a request (:class:`ApiKeyAuthenticator`).

A key is shown once, when created or rotated; the store keeps only its keyed hash. Revoked and
expired keys are kept. Rotation makes a successor with the same name, tenant and roles; the old
key keeps working until the end of the overlap (default a day), then expires.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from orchestrator.access_ports import ApiKeyRecord, KeyStore
from orchestrator.auth.keys import PREFIX, Hasher, KeyMalformed, new_key, parse_key
from orchestrator.auth.principal import AuthenticationFailed, Principal

log = logging.getLogger(__name__)
DEFAULT_OVERLAP = 86_400.0  # seconds a rotated key keeps working
CACHE_SECONDS = 5.0  # a key's record is trusted this long (revocation elsewhere: this much later)
TOUCH_EVERY = 60.0  # seconds between two writes of a key's last-used time
MAX_CACHED = 10_000
MAX_NAME = 200
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class UnknownKey(LookupError):
    """No key with that id (in the caller's tenant)."""


class KeyStateError(ValueError):
    """The key cannot do that in its state (rotate a revoked or already rotated key)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` -> seconds; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h, 30d or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: ApiKeyRecord
    key: str  # the only time the whole key is available


def key_status(record: ApiKeyRecord, now: float) -> str:
    """active, expired or revoked."""
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and record.expires_at <= now:
        return "expired"
    return "active"


def key_view(record: ApiKeyRecord, now: float) -> dict[str, object]:
    """What listings show of a key: everything but its hash."""
    view = record.to_dict()
    del view["digest"], view["pepper_id"]
    return {**view, "status": key_status(record, now)}


class KeyService:
    """Key lifecycle over a KeyStore; ``changed`` observers hear of revocations and rotations
    (the authenticator of this process forgets its cached record at once)."""

    def __init__(self, store: KeyStore, hasher: Hasher, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.hasher = hasher
        self.clock = clock
        self.changed: list[Callable[[str], None]] = []

    async def create(
        self,
        name: str,
        tenant: str,
        roles: Mapping[str, Sequence[str]],
        *,
        expires_in: float | None = None,
        owner: str | None = None,
        created_by: str | None = None,
        rotated_from: str | None = None,
    ) -> CreatedKey:
        if not name or len(name) > MAX_NAME:
            raise ValueError(f"a key name has 1 to {MAX_NAME} characters")
        if not any(roles.values()):
            raise ValueError("a key needs at least one role")
        parsed, text = new_key()
        now = self.clock()
        record = ApiKeyRecord(
            key_id=parsed.key_id,
            digest=self.hasher.digest(parsed.secret),
            pepper_id=self.hasher.pepper_id,
            name=name,
            tenant=tenant,
            roles={scope: tuple(dict.fromkeys(names)) for scope, names in roles.items() if names},
            created_at=now,
            owner=owner,
            created_by=created_by,
            expires_at=None if expires_in is None else now + expires_in,
            rotated_from=rotated_from,
        )
        await self.store.add_key(record)
        return CreatedKey(record, text)

    async def get(self, key_id: str, tenant: str | None = None) -> ApiKeyRecord:
        """The key; UnknownKey when there is none, or it belongs to another tenant."""
        record = await self.store.get_key(key_id)
        if record is None or (tenant is not None and record.tenant != tenant):
            raise UnknownKey(f"no API key {key_id}")
        return record

    async def list(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        return await self.store.list_keys(tenant)

    async def revoke(self, key_id: str, tenant: str | None = None) -> ApiKeyRecord:
        """Revoke now (a revoked key stays revoked: revoking again changes nothing)."""
        record = await self.get(key_id, tenant)
        if record.revoked_at is not None:
            return record
        revoked = replace(record, revoked_at=self.clock())
        await self.store.save_key(revoked)
        self._notify(key_id)
        return revoked

    async def set_roles(
        self, key_id: str, roles: Mapping[str, Sequence[str]], tenant: str | None = None
    ) -> ApiKeyRecord:
        record = await self.get(key_id, tenant)
        if not any(roles.values()):
            raise ValueError("a key needs at least one role")
        changed = replace(record, roles={scope: tuple(names) for scope, names in roles.items() if names})
        await self.store.save_key(changed)
        self._notify(key_id)
        return changed

    async def rotate(
        self, key_id: str, *, overlap: float = DEFAULT_OVERLAP, tenant: str | None = None, created_by: str | None = None
    ) -> tuple[CreatedKey, ApiKeyRecord]:
        """A successor key (same name, tenant, roles, owner and lifetime) and the old record,
        which now expires after ``overlap`` seconds (or earlier, when it already did)."""
        old = await self.get(key_id, tenant)
        now = self.clock()
        if key_status(old, now) != "active":
            raise KeyStateError(f"key_{key_status(old, now)}", f"API key {key_id} is {key_status(old, now)}")
        if old.replaced_by is not None:
            raise KeyStateError("key_rotated", f"API key {key_id} was rotated to {old.replaced_by}; rotate that one")
        lifetime = None if old.expires_at is None else old.expires_at - old.created_at
        created = await self.create(
            old.name, old.tenant, old.roles, expires_in=lifetime, owner=old.owner,
            created_by=created_by, rotated_from=old.key_id,
        )  # fmt: skip
        ends = now + overlap if old.expires_at is None else min(old.expires_at, now + overlap)
        retired = replace(old, expires_at=ends, replaced_by=created.record.key_id)
        await self.store.save_key(retired)
        self._notify(key_id)
        return created, retired

    def _notify(self, key_id: str) -> None:
        for observer in self.changed:
            observer(key_id)


class ApiKeyAuthenticator:
    """``Authorization: Bearer orch_...`` -> the key's Principal. A bearer value that is not
    shaped like one of our keys is left to the next authenticator (a JWT, say); one that is but
    fails its checksum, is unknown, wrong, expired or revoked is AuthenticationFailed."""

    def __init__(
        self,
        store: KeyStore,
        hasher: Hasher,
        *,
        clock: Callable[[], float] = time.time,
        cache_seconds: float = CACHE_SECONDS,
        touch_every: float = TOUCH_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.clock = clock
        self.monotonic = monotonic  # the cache's clock: a record read at t is trusted until t + cache_seconds
        self.cache_seconds = cache_seconds
        self.touch_every = touch_every
        self._cache: dict[str, tuple[float, ApiKeyRecord]] = {}
        self._touched: dict[str, float] = {}

    def forget(self, key_id: str) -> None:
        """Drop a cached record (after a revocation or rotation in this process)."""
        self._cache.pop(key_id, None)

    async def authenticate(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Principal | None:
        value = headers.get("Authorization")
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(PREFIX):
            return None
        try:
            parsed = parse_key(token)
        except KeyMalformed as exc:
            raise AuthenticationFailed("malformed_key", str(exc)) from None
        record = await self._record(parsed.key_id)
        if record is None:
            raise AuthenticationFailed("unknown_key", "unknown API key")
        if not self.hasher.matches(parsed.secret, record.digest):
            if record.pepper_id != self.hasher.pepper_id:
                log.warning("API key %s was hashed under another pepper (%s, this server: %s)",
                            record.key_id, record.pepper_id, self.hasher.pepper_id)  # fmt: skip
            raise AuthenticationFailed("invalid_key", "invalid API key")
        now = self.clock()
        status = key_status(record, now)
        if status != "active":
            raise AuthenticationFailed(f"key_{status}", f"the API key {record.key_id} is {status}")
        await self._touch(record, now)
        return Principal(
            subject=record.owner or record.name,
            kind="key",
            tenant=record.tenant,
            roles=record.roles,
            credential_id=record.key_id,
        )

    async def _record(self, key_id: str) -> ApiKeyRecord | None:
        now = self.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        record = await self.store.get_key(key_id)
        if record is not None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key_id] = (now, record)
        return record

    async def _touch(self, record: ApiKeyRecord, now: float) -> None:
        """Write the last-used time at most every ``touch_every`` seconds per key; a failing
        write is logged, never fails the request."""
        last = max(record.last_used_at or 0.0, self._touched.get(record.key_id, 0.0))
        if now - last < self.touch_every:
            return
        if len(self._touched) >= MAX_CACHED:
            self._touched.clear()
        self._touched[record.key_id] = now
        try:
            await self.store.touch_key(record.key_id, now)
        except Exception as exc:
            log.warning("cannot record the use of API key %s: %s", record.key_id, exc)
