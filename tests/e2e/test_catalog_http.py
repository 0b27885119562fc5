"""The catalog over HTTP with authentication on: publish -> pending -> approve -> search ->
review -> report -> moderate -> install, role checks, another tenant, the audit trail, and the
signature of a download."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.audit.query import AuditQuery, search
from orchestrator.auth.control import access_control
from orchestrator.catalog.model import checksum
from orchestrator.catalog.signing import verify
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings

Client = TestClient[web.Request, web.Application]
T = "/api/v1/catalog/templates"


def template(version: str = "1.0.0", name: str = "hello-flow", **metadata: Any) -> dict[str, Any]:
    meta = {
        "id": name, "version": version, "title": "Hello flow", "description": "Says hello",
        "categories": ["demo"], "tags": ["hello", "starter"], "author": "Ann", "licence": "MIT", "engine": ">=0.1",
        **metadata,
    }  # fmt: skip
    workflow = {"name": name, "steps": [{"name": "done", "type": "succeed"}]}
    return {"metadata": meta, "parameters": {}, "workflow": workflow}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Client, dict[str, str], Runtime]]:
    settings = Settings(event_log_url=f"sqlite:///{tmp_path}/events.db", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        keys = {}
        for name, tenant, role in (
            ("dev", "default", "developer"), ("dev2", "default", "developer"), ("viewer", "default", "viewer"),
            ("admin", "default", "admin"), ("acme-dev", "acme", "developer"),
        ):  # fmt: skip
            keys[name] = (await control.keys.create(name, tenant, {tenant: [role]})).key
        app = build_app(runtime, settings, control=control)
        async with TestClient(TestServer(app)) as client:
            yield client, keys, runtime


async def call(client: Client, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    data = None if body is None else json.dumps(body)
    async with client.request(method, path, data=data, headers=headers) as response:
        return response.status, await response.json()


async def test_the_whole_flow(served: tuple[Client, dict[str, str], Runtime], tmp_path: Path) -> None:
    client, keys, runtime = served
    dev, viewer, admin, acme = keys["dev"], keys["viewer"], keys["admin"], keys["acme-dev"]

    status, answer = await call(client, viewer, "POST", T, template())
    assert status == 403 and answer["error"]["code"] == "forbidden"  # a viewer cannot publish
    status, published = await call(client, dev, "POST", T, template())
    assert status == 201 and published["status"] == "pending"
    assert published["checksum"] == checksum(template())
    assert (await call(client, dev, "POST", T, template()))[0] == 200  # the same content again
    status, answer = await call(client, dev, "POST", T, template(title="Changed"))
    assert status == 409 and answer["error"]["code"] == "version_exists"
    status, answer = await call(client, dev, "POST", T, {"metadata": {"id": "Bad Id"}})
    assert status == 400 and answer["error"]["code"] == "invalid_template"
    status, answer = await call(client, keys["dev2"], "POST", T, template("2.0.0"))
    assert status == 403 and answer["error"]["code"] == "template_owned"

    # pending: seen by its publisher and the moderators only
    assert (await call(client, viewer, "GET", T))[1]["items"] == []
    assert [i["id"] for i in (await call(client, dev, "GET", T))[1]["items"]] == ["hello-flow"]
    assert (await call(client, viewer, "GET", T + "/hello-flow/versions/1.0.0"))[0] == 404
    status, answer = await call(client, dev, "POST", T + "/hello-flow/versions/1.0.0/moderation", {"action": "approve"})
    assert status == 403  # a developer does not moderate
    status, answer = await call(client, admin, "POST", T + "/hello-flow/versions/1.0.0/moderation", {"action": "reject"})
    assert status == 400 and answer["error"]["code"] == "reason_required"
    status, approved = await call(
        client, admin, "POST", T + "/hello-flow/versions/1.0.0/moderation", {"action": "approve", "reason": "fine"}
    )
    assert status == 200 and approved["status"] == "approved"

    # search and download
    for query in ("?q=HELLO", "?category=demo", "?tag=starter", "?author=ann", "?engine=0.5.0"):
        assert [i["id"] for i in (await call(client, viewer, "GET", T + query))[1]["items"]] == ["hello-flow"], query
    for query in ("?q=nothing", "?tag=other", "?engine=0.0.1"):
        assert (await call(client, viewer, "GET", T + query))[1]["items"] == [], query
    assert (await call(client, viewer, "GET", T + "?bogus=1"))[0] == 400
    status, download = await call(client, viewer, "GET", T + "/hello-flow/versions/1.0.0")
    assert status == 200 and download["document"] == template()
    key = (await call(client, viewer, "GET", "/api/v1/catalog/key"))[1]
    assert key["key"] == download["key"] and verify(key["key"], download["checksum"], download["signature"])
    assert (tmp_path / "catalog-signing-key.pem").exists()  # generated beside the SQLite file

    # reviews: one per principal, editable; a report; a moderator hides it
    assert (await call(client, viewer, "PUT", T + "/hello-flow/review", {"rating": 9}))[0] == 400
    assert (await call(client, viewer, "PUT", T + "/hello-flow/review", {"rating": 2, "text": "meh"}))[0] == 201
    assert (await call(client, viewer, "PUT", T + "/hello-flow/review", {"rating": 4, "text": "ok"}))[0] == 200
    assert (await call(client, dev, "PUT", T + "/hello-flow/review", {"rating": 1, "text": "spam"}))[0] == 201
    listed = (await call(client, viewer, "GET", T))[1]["items"][0]
    assert listed["rating"] == {"average": 2.5, "count": 2}
    shown = (await call(client, viewer, "GET", T + "/hello-flow"))[1]
    reviewer = next(r["reviewer"] for r in shown["reviews"] if r["rating"] == 1)
    status, reported = await call(client, viewer, "POST", T + f"/hello-flow/reviews/{reviewer}/report")
    assert status == 200 and reported["status"] == "reported"
    assert (await call(client, viewer, "POST", T + "/hello-flow/reviews/nobody/report"))[0] == 404
    moderation = T + f"/hello-flow/reviews/{reviewer}/moderation"
    assert (await call(client, viewer, "POST", moderation, {"action": "hide"}))[0] == 403
    status, hidden = await call(client, admin, "POST", moderation, {"action": "hide", "reason": "spam"})
    assert status == 200 and hidden["status"] == "hidden"
    assert (await call(client, viewer, "GET", T))[1]["items"][0]["rating"] == {"average": 4.0, "count": 1}

    # install: in the caller's tenant, another tenant's own copy
    install = T + "/hello-flow/versions/1.0.0/install"
    assert (await call(client, viewer, "POST", install, {}))[0] == 403
    status, installed = await call(client, dev, "POST", install, {})
    assert status == 201 and (installed["tenant"], installed["workflow"]) == ("default", "hello-flow")
    assert (await runtime.registry.get("hello-flow")).tenant == "default"
    status, answer = await call(client, acme, "POST", install, {})  # workflow names are unique across tenants
    assert status == 409 and answer["error"]["code"] == "workflow_name_taken"
    assert (await call(client, acme, "POST", T, template(name="acme-flow")))[0] == 201  # one catalog for all
    await call(client, admin, "POST", T + "/acme-flow/versions/1.0.0/moderation", {"action": "approve"})
    status, installed = await call(client, acme, "POST", T + "/acme-flow/versions/1.0.0/install")
    assert status == 201 and installed["tenant"] == "acme"
    assert (await runtime.registry.get("acme-flow")).tenant == "acme"
    greet = template(name="greet-flow")  # a template with a parameter: rendered on install
    greet["parameters"] = {"type": "object", "properties": {"who": {"type": "string"}}, "required": ["who"]}
    greet["workflow"]["description"] = "Greets {{% params.who %}}"
    assert (await call(client, dev, "POST", T, greet))[0] == 201
    await call(client, admin, "POST", T + "/greet-flow/versions/1.0.0/moderation", {"action": "approve"})
    greet_install = T + "/greet-flow/versions/1.0.0/install"
    status, answer = await call(client, dev, "POST", greet_install, {"parameters": {"who": 7}})
    assert status == 422 and answer["error"]["code"] == "invalid_parameters", answer
    status, installed = await call(client, dev, "POST", greet_install, {"parameters": {"who": "Ann"}})
    assert status == 201, installed
    stored = await runtime.registry.get("greet-flow")
    assert stored.description == "Greets Ann" and stored.provenance is not None
    assert (stored.provenance.template, stored.provenance.parameters) == ("greet-flow", {"who": "Ann"})
    assert (await call(client, dev, "POST", T + "/hello-flow/versions/9.9.9/install", {}))[0] == 404

    # unlisting hides it from search; the audit trail holds every moderation
    await call(client, admin, "POST", T + "/hello-flow/versions/1.0.0/moderation", {"action": "unlist"})
    assert [i["id"] for i in (await call(client, viewer, "GET", T))[1]["items"]] == ["acme-flow", "greet-flow"]
    audited = [s.record for s in (await search(runtime.audit.log, AuditQuery(limit=1000))).items]
    moderated = [r for r in audited if r.action == "catalog:moderate" and r.outcome == "ok"]
    assert [r.details.get("action") for r in moderated] == ["approve", "hide", "approve", "approve", "unlist"]
    assert moderated[0].reason == "fine" and moderated[1].reason == "spam"
    assert any(r.action == "catalog:publish" and r.outcome == "denied" for r in audited)


async def test_a_bad_catalog_setting_is_a_settings_error(tmp_path: Path) -> None:
    from orchestrator.settings import SettingsError

    for settings in (
        Settings(event_log_url="memory://", catalog_url="kafka://broker:9092"),
        Settings(event_log_url="memory://", catalog_signing_key=str(tmp_path / "missing.pem")),
    ):
        async with Runtime(settings) as runtime:
            with pytest.raises(SettingsError):
                build_app(runtime, settings)
