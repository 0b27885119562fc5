"""The AccessStore contract (API keys and custom roles): each backend's test subclasses
AccessStoreContract to say how to build it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.access_ports import AccessStore, ApiKeyRecord, KeyExists


def key(key_id: str = "AAAAAAAAAAAA", tenant: str = "default", created_at: float = 100.0) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=key_id,
        digest="ab" * 32,
        pepper_id="none",
        name="ci deploys ✓",
        tenant=tenant,
        roles={tenant: ("operator", "viewer"), "*": ("auditor",)},
        created_at=created_at,
        owner=None,
        created_by="cli:ada",
        expires_at=created_at + 3600,
    )


class AccessStoreContract(ABC):
    @abstractmethod
    async def make_store(self, tmp_path: Path) -> AccessStore: ...

    async def test_a_key_round_trips_and_ids_are_unique(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        try:
            assert await store.get_key("AAAAAAAAAAAA") is None
            await store.add_key(key())
            assert await store.get_key("AAAAAAAAAAAA") == key()
            with pytest.raises(KeyExists):
                await store.add_key(replace(key(), digest="cd" * 32))
            assert await store.get_key("AAAAAAAAAAAA") == key()
        finally:
            await store.stop()

    async def test_listing_is_oldest_first_and_by_tenant(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        try:
            await store.add_key(key("CCCCCCCCCCCC", "acme", created_at=300.0))
            await store.add_key(key("AAAAAAAAAAAA", "default", created_at=100.0))
            await store.add_key(key("BBBBBBBBBBBB", "acme", created_at=200.0))
            assert [k.key_id for k in await store.list_keys()] == ["AAAAAAAAAAAA", "BBBBBBBBBBBB", "CCCCCCCCCCCC"]
            assert [k.key_id for k in await store.list_keys("acme")] == ["BBBBBBBBBBBB", "CCCCCCCCCCCC"]
            assert await store.list_keys("nobody") == []
        finally:
            await store.stop()

    async def test_save_replaces_the_record_and_keeps_the_last_use(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        try:
            await store.add_key(key())
            await store.touch_key("AAAAAAAAAAAA", 150.0)
            assert (await store.get_key("AAAAAAAAAAAA")) == replace(key(), last_used_at=150.0)
            revoked = replace(key(), revoked_at=160.0, replaced_by="BBBBBBBBBBBB")
            await store.save_key(revoked)
            assert await store.get_key("AAAAAAAAAAAA") == replace(revoked, last_used_at=150.0)
            await store.touch_key("nobody", 1.0)  # harmless
            assert await store.get_key("nobody") is None
        finally:
            await store.stop()

    async def test_custom_roles_are_per_tenant(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        try:
            await store.put_role("acme", "deployer", ("definitions:write", "executions:start:deploy-*"))
            await store.put_role("acme", "reader", ("executions:read",))
            await store.put_role("other", "deployer", ("executions:read",))
            assert await store.roles("acme") == {
                "deployer": ("definitions:write", "executions:start:deploy-*"),
                "reader": ("executions:read",),
            }
            await store.put_role("acme", "reader", ("payloads:read",))
            assert (await store.roles("acme"))["reader"] == ("payloads:read",)
            assert await store.delete_role("acme", "reader") is True
            assert await store.delete_role("acme", "reader") is False
            assert await store.roles("acme") == {"deployer": ("definitions:write", "executions:start:deploy-*")}
            assert await store.roles("other") == {"deployer": ("executions:read",)}
            assert await store.roles("nobody") == {}
        finally:
            await store.stop()
