"""The encrypted secret store contract: each backend's test says how to build its ``SecretRecords``;
the suite runs them under ``SealedSecrets`` and also reads what the backend holds, raw."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.backends.memory import MemoryEventLog
from orchestrator.crypto.data_keys import DataKeys
from orchestrator.crypto.keyring import Keyring, load_keyring
from orchestrator.crypto.sealing import MAGIC, header
from orchestrator.ports import DataKeyStore, SecretRecords, SecretsUnavailable
from orchestrator.secrets.keyring_sealing import KeyringSealer, reseal, secrets_under
from orchestrator.secrets.sealed import SealedSecrets
from orchestrator.secrets.sealing import AesGcmSealer, NoKey, Sealer, new_key
from orchestrator.secrets.stores import InvalidSecretName
from tests.encryption_kit import key_text

VALUE = "hunter2-very-secret-value"
Parts = tuple[SecretRecords, DataKeyStore]


class SecretStoreContract(ABC):
    @abstractmethod
    async def make_records(self, tmp_path: Path) -> SecretRecords:
        """Started records; durable backends open the same data when called again."""

    async def make_data_keys(self, tmp_path: Path) -> DataKeyStore:
        """Where the keyring's data keys live: the backend's own event log (started)."""
        return MemoryEventLog()

    @pytest.fixture
    def key(self) -> str:
        return new_key()

    @pytest.fixture
    async def store(self, tmp_path: Path, key: str) -> AsyncIterator[SealedSecrets]:
        store = SealedSecrets(await self.make_records(tmp_path), AesGcmSealer.from_text(key))
        try:
            yield store
        finally:
            await store.stop()

    async def test_a_value_round_trips_per_tenant(self, store: SealedSecrets) -> None:
        info = await store.put("acme", "API_TOKEN", VALUE)
        assert (info.tenant, info.name, info.key_id) == ("acme", "API_TOKEN", store.sealer.key_id)
        assert await store.get("acme", "API_TOKEN") == VALUE
        assert await store.get("default", "API_TOKEN") is None  # another tenant sees nothing
        assert await store.get("acme", "OTHER") is None

    async def test_the_backend_holds_ciphertext_only(self, store: SealedSecrets) -> None:
        await store.put("acme", "API_TOKEN", VALUE)
        sealed = await store.records.get_sealed("acme", "API_TOKEN")
        assert sealed is not None and VALUE.encode() not in sealed

    async def test_replacing_keeps_created_at_and_listing_shows_no_values(self, store: SealedSecrets) -> None:
        first = await store.put("acme", "B", "one")
        await store.put("acme", "A", "x")
        await store.put("other", "C", "y")
        second = await store.put("acme", "B", "two")
        assert second.created_at == first.created_at and second.updated_at >= first.updated_at
        assert await store.get("acme", "B") == "two"
        listed = await store.list("acme")
        assert [info.name for info in listed] == ["A", "B"]
        assert all("two" not in str(info.to_dict().values()) for info in listed)

    async def test_delete(self, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        assert await store.delete("acme", "A") is True
        assert await store.delete("acme", "A") is False
        assert await store.get("acme", "A") is None and await store.list("acme") == []

    async def test_a_value_moved_to_another_row_does_not_open(self, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        sealed = await store.records.get_sealed("acme", "A")
        assert sealed is not None
        await store.records.put_sealed("evil", "A", sealed, store.sealer.key_id, "2026-01-01T00:00:00Z")
        with pytest.raises(SecretsUnavailable, match="authenticate"):
            await store.get("evil", "A")

    async def test_another_key_cannot_read_and_says_so(self, tmp_path: Path, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        other = SealedSecrets(store.records, AesGcmSealer.from_text(new_key()))
        with pytest.raises(SecretsUnavailable, match="sealed with key"):
            await other.get("acme", "A")

    async def test_without_a_key_nothing_is_stored(self, store: SealedSecrets) -> None:
        keyless = SealedSecrets(store.records, NoKey())
        with pytest.raises(SecretsUnavailable, match="ORCHESTRATOR_SECRETS_KEY"):
            await keyless.put("acme", "A", VALUE)
        assert await store.records.list("acme") == []

    async def test_invalid_names_are_refused(self, store: SealedSecrets) -> None:
        for name in ("", "1A", "a-b", "../x", "a" * 129):
            with pytest.raises(InvalidSecretName):
                await store.put("acme", name, VALUE)

    async def test_data_survives_stop_and_reopen(self, tmp_path: Path, key: str, store: SealedSecrets) -> None:
        await store.put("acme", "A", VALUE)
        if not self.durable:
            return
        await store.stop()
        reopened = SealedSecrets(await self.make_records(tmp_path), AesGcmSealer.from_text(key))
        try:
            assert await reopened.get("acme", "A") == VALUE
        finally:
            await reopened.stop()
        await store.start()  # the fixture stops it again

    durable = True


def ring(*ids: str) -> Keyring:
    keyring = load_keyring(None, key_text(*ids), None)
    assert keyring is not None
    return keyring


class KeyringSecretsContract(SecretStoreContract):
    """The same store sealed by the encryption keyring: envelope encryption under per-tenant data
    keys, the key id in every value, rotation by re-sealing, tampering refused. The stores share
    one started ``parts`` (records, data keys), as processes share a backend."""

    @pytest.fixture
    async def parts(self, tmp_path: Path) -> AsyncIterator[Parts]:
        records, data_keys = await self.make_records(tmp_path), await self.make_data_keys(tmp_path)
        try:
            yield records, data_keys
        finally:
            await records.stop()
            stop = getattr(data_keys, "stop", None)
            if stop is not None:
                await stop()

    def sealed_by(self, parts: Parts, *ids: str, legacy: Sealer | None = None) -> SealedSecrets:
        """A store over ``parts`` sealed by a keyring of ``ids`` (the last current)."""
        records, data_keys = parts
        return SealedSecrets(records, KeyringSealer(DataKeys(ring(*ids), data_keys), legacy or NoKey()))

    async def test_keyring_sealed_values_name_tenant_and_key(self, parts: Parts) -> None:
        records, data_keys = parts
        store = self.sealed_by(parts, "k1")
        info = await store.put("acme", "API_TOKEN", VALUE)
        assert info.key_id == "k1" and await store.get("acme", "API_TOKEN") == VALUE
        sealed = await records.get_sealed("acme", "API_TOKEN")
        assert sealed is not None and sealed.startswith(MAGIC) and VALUE.encode() not in sealed
        assert (header(sealed).tenant, header(sealed).key_id) == ("acme", "k1")
        assert [r.tenant for r in await data_keys.data_keys("acme")] == ["acme"]  # the tenant's data key
        assert await store.get("other", "API_TOKEN") is None

    async def test_rotation_keeps_old_values_readable_then_reseals_them(self, parts: Parts) -> None:
        records, _ = parts
        old = self.sealed_by(parts, "k1")
        await old.put("acme", "A", VALUE)
        await old.put("globex", "B", "other-value")
        rotated = self.sealed_by(parts, "k1", "k2")  # k2 current
        assert await rotated.get("acme", "A") == VALUE  # under k1, still readable
        assert (await rotated.put("acme", "C", "new")).key_id == "k2"
        assert await secrets_under(rotated, "k1") == 2
        report = await reseal(rotated)
        assert (report.resealed, report.current) == (2, 1)
        assert await secrets_under(rotated, "k1") == 0
        assert {i.key_id for t in ("acme", "globex") for i in await records.list(t)} == {"k2"}
        assert (await reseal(rotated)).resealed == 0  # running it again changes nothing
        only_new = self.sealed_by(parts, "k2")  # k1 retired
        assert await only_new.get("acme", "A") == VALUE and await only_new.get("globex", "B") == "other-value"

    async def test_a_value_under_a_key_the_keyring_lacks_says_so(self, parts: Parts) -> None:
        await self.sealed_by(parts, "k1").put("acme", "A", VALUE)
        with pytest.raises(SecretsUnavailable, match="k1"):
            await self.sealed_by(parts, "k2").get("acme", "A")

    async def test_a_tampered_or_moved_keyring_value_does_not_open(self, parts: Parts) -> None:
        records, _ = parts
        store = self.sealed_by(parts, "k1")
        await store.put("acme", "A", VALUE)
        await store.put("evil", "X", "x")  # evil has a data key of its own
        sealed = await records.get_sealed("acme", "A")
        assert sealed is not None
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        at = "2026-01-01T00:00:00Z"
        await records.put_sealed("acme", "A", tampered, "k1", at)
        with pytest.raises(SecretsUnavailable, match="authenticate"):
            await store.get("acme", "A")
        await records.put_sealed("acme", "B", sealed, "k1", at)  # another name
        with pytest.raises(SecretsUnavailable, match="authenticate"):
            await store.get("acme", "B")
        await records.put_sealed("evil", "A", sealed, "k1", at)  # another tenant
        with pytest.raises(SecretsUnavailable, match="authenticate"):
            await store.get("evil", "A")

    async def test_values_of_the_secrets_key_open_and_move_to_the_keyring(self, parts: Parts, key: str) -> None:
        records, _ = parts
        legacy = AesGcmSealer.from_text(key)
        await SealedSecrets(records, legacy).put("acme", "A", VALUE)
        store = self.sealed_by(parts, "k1", legacy=legacy)
        assert await store.get("acme", "A") == VALUE
        assert (await reseal(store)).resealed == 1
        assert await self.sealed_by(parts, "k1").get("acme", "A") == VALUE  # the secrets key is no longer needed
