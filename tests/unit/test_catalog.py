"""The catalog's model, signing, engine ranges and rules (over the memory store)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.engine import satisfies
from orchestrator.catalog.memory import MemoryCatalog
from orchestrator.catalog.model import CatalogError, canonical, checksum, read_metadata, version_key
from orchestrator.catalog.opening import CatalogSettingsError, catalog_signer, catalog_url, open_catalog_store
from orchestrator.catalog.service import Catalog, SearchQuery, Viewer
from orchestrator.catalog.signing import KEY_FILE, Signer, SigningKeyError, signer_at, verify
from tests.contracts.catalog import document


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Mapping[str, Any], Mapping[str, Any], str, str]] = []

    async def install(
        self, document: Mapping[str, Any], parameters: Mapping[str, Any], *, tenant: str, actor: str
    ) -> dict[str, Any]:
        self.calls.append((document, parameters, tenant, actor))
        return {"installed": True}


def make_catalog() -> tuple[Catalog, Recorder]:
    recorder = Recorder()
    return Catalog(MemoryCatalog(), Signer.generate(), recorder, lambda: "2026-01-01T00:00:00Z"), recorder


def test_metadata_is_validated() -> None:
    assert read_metadata(document()).id == "hello"
    for bad in ({"id": "Bad_Id"}, {"version": "1.0"}, {"title": ""}, {"author": None}):
        doc = document()
        doc["metadata"] = {**doc["metadata"], **bad}
        with pytest.raises(CatalogError) as caught:
            read_metadata(doc)
        assert (caught.value.status, caught.value.code) == (400, "invalid_template")
    not_ones: list[Any] = [[], "text", {"workflow": {}}]
    for not_one in not_ones:
        with pytest.raises(CatalogError):
            read_metadata(not_one)


def test_checksum_is_over_canonical_json() -> None:
    assert canonical({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'
    assert checksum({"b": 1, "a": 2}) == checksum({"a": 2, "b": 1})
    assert checksum({"a": 1}) != checksum({"a": 2})
    assert checksum({}).startswith("sha256:")


def test_versions_sort_semantically() -> None:
    ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-beta.2", "1.0.0", "1.2.0", "1.10.0"]
    assert sorted(reversed(ordered), key=version_key) == ordered


def test_engine_ranges() -> None:
    assert satisfies("1.4.0", "*") and satisfies("1.4.0", ">=1.0, <2") and satisfies("1.4.2", "~1.4")
    assert satisfies("1.9.0", "^1.2") and not satisfies("2.0.0", "^1.2") and not satisfies("1.5.0", "~1.4")
    assert satisfies("1.4.0", "1") and satisfies("1.4.7", "1.4") and not satisfies("1.4.0", "1.4.1")
    assert not satisfies("1.0.0", "nonsense")


def test_signatures_verify_and_fail(tmp_path: Path) -> None:
    signer = Signer.generate()
    signature = signer.sign("sha256:abc")
    assert verify(signer.public_key, "sha256:abc", signature)
    assert not verify(signer.public_key, "sha256:abd", signature)
    assert not verify(Signer.generate().public_key, "sha256:abc", signature)
    assert not verify(signer.public_key, "sha256:abc", "not base64!")


def test_the_signing_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    first = catalog_signer(url)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert catalog_signer(url).public_key == first.public_key
    assert (
        catalog_signer("memory://", str(tmp_path / KEY_FILE)).public_key
        == first.public_key
    )
    with pytest.raises(CatalogSettingsError):
        catalog_signer(url, str(tmp_path / "missing.pem"))
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(SigningKeyError):
        signer_at(tmp_path / "bad.pem", create=True)


def test_store_urls() -> None:
    assert catalog_url("sqlite:///x.db") == "sqlite:///x.db"
    assert catalog_url("memory://") == "memory://"
    assert catalog_url("memory://", "sqlite:///c.db") == "sqlite:///c.db"
    assert isinstance(open_catalog_store("memory://"), MemoryCatalog)
    with pytest.raises(CatalogSettingsError):
        open_catalog_store("kafka://broker:9092")


async def test_publish_moderate_and_visibility() -> None:
    catalog, _ = make_catalog()
    ann, bob, mod = Viewer("ann"), Viewer("bob"), Viewer("mod", moderator=True)
    entry, created = await catalog.publish(document(), "ann")
    assert (
        created
        and entry.status == "pending"
        and verify(catalog.signer.public_key, entry.checksum, entry.signature)
    )
    assert (await catalog.publish(document(), "ann"))[1] is False
    with pytest.raises(CatalogError) as caught:
        await catalog.publish(document(description="other"), "ann")
    assert caught.value.code == "version_exists"
    with pytest.raises(CatalogError) as caught:
        await catalog.publish(document(version="2.0.0"), "bob")
    assert caught.value.code == "template_owned"
    assert await catalog.search(bob, SearchQuery()) == []
    assert [s["id"] for s in await catalog.search(ann, SearchQuery())] == ["hello"]
    assert [s["id"] for s in await catalog.search(mod, SearchQuery())] == ["hello"]
    with pytest.raises(CatalogError):
        await catalog.download(bob, "hello", "1.0.0")
    with pytest.raises(CatalogError) as caught:
        await catalog.moderate("hello", "1.0.0", "reject", None)
    assert caught.value.code == "reason_required"
    await catalog.moderate("hello", "1.0.0", "approve", None)
    assert [s["id"] for s in await catalog.search(bob, SearchQuery(q="HEL"))] == ["hello"]
    assert await catalog.search(bob, SearchQuery(tag="missing")) == []
    await catalog.moderate("hello", "1.0.0", "unlist", None)
    assert await catalog.search(bob, SearchQuery()) == []
    assert (await catalog.download(bob, "hello", "1.0.0")).status == "unlisted"  # still installs by number


async def test_reviews_reports_and_install() -> None:
    catalog, recorder = make_catalog()
    bob, eve, mod = Viewer("bob"), Viewer("eve"), Viewer("mod", moderator=True)
    await catalog.publish(document(), "ann")
    with pytest.raises(CatalogError):
        await catalog.review(bob, "hello", 5, "pending: not visible")
    with pytest.raises(CatalogError) as caught:
        await catalog.install(bob, "hello", "1.0.0", {}, tenant="acme")
    assert caught.value.status == 404
    await catalog.moderate("hello", "1.0.0", "approve", None)
    assert (await catalog.review(bob, "hello", 2, "meh"))[1] is True
    assert (await catalog.review(bob, "hello", 4, "better"))[1] is False
    await catalog.review(eve, "hello", 1, "spam spam")
    assert await catalog.rating("hello") == {"average": 2.5, "count": 2}
    reported = await catalog.report(bob, "hello", "eve")
    assert reported.status == "reported" and reported.reports == ("bob",)
    await catalog.moderate_review("hello", "eve", "hide")
    assert await catalog.rating("hello") == {"average": 4.0, "count": 1}
    assert [r["reviewer"] for r in (await catalog.show(bob, "hello"))["reviews"]] == ["bob"]
    assert len((await catalog.show(mod, "hello"))["reviews"]) == 2
    result = await catalog.install(bob, "hello", "1.0.0", {"x": 1}, tenant="acme")
    assert result["installed"] and recorder.calls[0][1:] == ({"x": 1}, "acme", "bob")


def test_a_download_is_verified_before_use(tmp_path: Path) -> None:
    from orchestrator.cli.catalogs import RemoteCatalog, load_catalogs, save_catalog, verified
    from orchestrator.cli.errors import CliError

    signer, doc = Signer.generate(), document()
    good = {"document": doc, "checksum": checksum(doc), "signature": signer.sign(checksum(doc))}
    assert verified(good, signer.public_key) == doc
    tampered = {**good, "document": {**doc, "workflow": {"name": "evil"}}}
    for bad, key, words in (
        (tampered, signer.public_key, "checksum"),
        (good, Signer.generate().public_key, "signature"),
        ({**good, "signature": "AAAA"}, signer.public_key, "signature"),
        ({"checksum": "x"}, signer.public_key, "no template"),
    ):
        with pytest.raises(CliError, match=words):
            verified(bad, key)
    path = tmp_path / "catalogs.json"
    save_catalog(path, RemoteCatalog("one", "http://a", signer.public_key, "ONE_KEY"))
    assert load_catalogs(path)["one"].key_env == "ONE_KEY"
    with pytest.raises(CliError):
        save_catalog(path, RemoteCatalog("Bad Name", "http://a", "k"))
    path.write_text("not json")
    with pytest.raises(CliError):
        load_catalogs(path)
