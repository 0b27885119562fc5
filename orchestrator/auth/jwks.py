"""The signing keys of an identity provider: a JWKS from a file or an ``http(s)://`` URL, cached.

The set is loaded on first use and again after ``max_age`` seconds; a token naming a key id the
cached set lacks triggers one reload, at most every ``min_reload`` seconds, so a provider that
rotated its keys is followed at once while garbage key ids cannot make the server hammer it.
Loads are serialised (one at a time), bounded in size, key count and time; a failed reload keeps
the last good set. Only signing keys (``use`` absent or ``sig``) of the allowed families count.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from orchestrator.auth.principal import AuthenticationFailed

log = logging.getLogger(__name__)

MAX_BYTES = 1024 * 1024
MAX_KEYS = 64
FETCH_TIMEOUT = 5.0
# Algorithm -> the key type (JWK ``kty``) that may verify it. HMAC is absent on purpose: a public
# key must never be usable as a shared secret, and "none" is never a signature.
KEY_TYPES = {
    **{f"RS{bits}": "RSA" for bits in (256, 384, 512)},
    **{f"PS{bits}": "RSA" for bits in (256, 384, 512)},
    **{f"ES{bits}": "EC" for bits in (256, 384, 512)},
    "EdDSA": "OKP",
}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of the set: its key type (``kty``) and the algorithm it declares (``alg``), if any."""

    jwk: jwt.PyJWK
    key_type: str
    algorithm: str | None

    def verifies(self, algorithm: str) -> bool:
        """Whether this key may check signatures made with ``algorithm``."""
        return KEY_TYPES.get(algorithm) == self.key_type and self.algorithm in (None, algorithm)


class KeysUnavailable(AuthenticationFailed):
    """No key set could be loaded (and none was cached)."""

    def __init__(self, message: str) -> None:
        super().__init__("token_keys_unavailable", message)


class Jwks:
    """A cached key set from ``location`` (a file path, or an ``http://``/``https://`` URL)."""

    def __init__(
        self,
        location: str,
        *,
        max_age: float = 300.0,
        min_reload: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location = location
        self.max_age = max_age
        self.min_reload = min_reload
        self._clock = clock
        self._keys: dict[str | None, SigningKey] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()
        self.loads = 0  # how many times the set was read (tests and metrics)

    @property
    def remote(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    async def key(self, kid: str | None) -> SigningKey:
        """The key named ``kid`` (a set of one key also serves tokens naming none), reloading
        the set when it is stale or lacks that key; AuthenticationFailed ``token_unknown_key``."""
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self.max_age:
            await self._reload(force=self._loaded_at is None)
        found = self._find(kid)
        if found is None and self._loaded_at is not None and self._clock() - self._loaded_at >= self.min_reload:
            await self._reload(force=False)
            found = self._find(kid)
        if found is None and not self._keys:
            raise KeysUnavailable(f"no signing keys could be loaded from {self.location}")
        if found is None:
            raise AuthenticationFailed("token_unknown_key", f"no signing key with id {kid!r}")
        return found

    def _find(self, kid: str | None) -> SigningKey | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _reload(self, *, force: bool) -> None:
        started = self._clock()
        async with self._lock:
            if self._loaded_at is not None and self._loaded_at >= started and not force:
                return  # another task reloaded while this one waited
            try:
                document = await (self._fetch() if self.remote else asyncio.to_thread(self._read))
                keys = parse_key_set(document)
            except (OSError, ValueError, aiohttp.ClientError, TimeoutError) as exc:
                self._loaded_at = self._clock()  # the next try waits min_reload / max_age too
                if not self._keys:
                    raise KeysUnavailable(f"cannot load the signing keys from {self.location}: {exc}") from exc
                log.warning("keeping the cached signing keys: cannot reload %s: %s", self.location, exc)
                return
            self._keys, self._loaded_at = keys, self._clock()
            self.loads += 1

    def _read(self) -> bytes:
        with Path(self.location).open("rb") as file:
            data = file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        return data

    async def _fetch(self) -> bytes:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self.location) as response:
            if response.status != 200:
                raise ValueError(f"answered {response.status}")
            data = await response.content.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        return data


def parse_key_set(document: bytes) -> dict[str | None, SigningKey]:
    """The usable signing keys of a JWKS document, by key id; ValueError when it has none."""
    try:
        data: Any = json.loads(document)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON key set: {exc}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('not a JWKS: no "keys" list')
    if len(entries) > MAX_KEYS:
        raise ValueError(f"more than {MAX_KEYS} keys")
    keys: dict[str | None, SigningKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in KEY_TYPES.values():
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, KeyError, TypeError):
            log.warning("skipping an unusable key %r in the key set", entry.get("kid"))
            continue
        declared = entry.get("alg")
        keys[entry.get("kid")] = SigningKey(key, entry["kty"], declared if isinstance(declared, str) else None)
    if not keys:
        raise ValueError("no usable signing keys")
    return keys
