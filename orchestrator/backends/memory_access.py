"""API keys and custom roles in memory (``memory://``): for one process and for tests."""

from __future__ import annotations

import builtins
from dataclasses import replace

from orchestrator.access_ports import ApiKeyRecord, KeyExists


class MemoryAccessStore:
    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}
        self._roles: dict[tuple[str, str], tuple[str, ...]] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryAccessStore:
        return cls()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def add_key(self, key: ApiKeyRecord) -> None:
        if key.key_id in self._keys:
            raise KeyExists(f"API key {key.key_id} exists")
        self._keys[key.key_id] = key

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return self._keys.get(key_id)

    async def list_keys(self, tenant: str | None = None) -> builtins.list[ApiKeyRecord]:
        keys = sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))
        return [k for k in keys if tenant is None or k.tenant == tenant]

    async def save_key(self, key: ApiKeyRecord) -> None:
        stored = self._keys.get(key.key_id)
        self._keys[key.key_id] = replace(key, last_used_at=None if stored is None else stored.last_used_at)

    async def touch_key(self, key_id: str, used_at: float) -> None:
        stored = self._keys.get(key_id)
        if stored is not None:
            self._keys[key_id] = replace(stored, last_used_at=used_at)

    async def put_role(self, tenant: str, name: str, grants: tuple[str, ...]) -> None:
        self._roles[(tenant, name)] = tuple(grants)

    async def delete_role(self, tenant: str, name: str) -> bool:
        return self._roles.pop((tenant, name), None) is not None

    async def roles(self, tenant: str) -> dict[str, tuple[str, ...]]:
        return {name: grants for (owner, name), grants in sorted(self._roles.items()) if owner == tenant}
