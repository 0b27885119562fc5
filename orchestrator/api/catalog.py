"""Catalog routes: publish template versions, search and download them, review, moderate and
install (docs/catalog.md).

Everyone may read (``catalog:read``) and review (``catalog:review``) approved templates;
developers publish (``catalog:publish``), which leaves a version pending until a moderator
(``catalog:moderate``, admins) approves it; a pending or rejected version is seen only by its
publisher and the moderators. Installing needs ``templates:install`` and registers the workflow
in the caller's tenant. Every request is in the audit trail (the audit middleware); moderation
notes the action and the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.auditing import note
from orchestrator.api.errors import error_response
from orchestrator.api.requests import (
    TENANT_PARAM,
    json_body,
    parse_json,
    query_params,
    request_actor,
    request_tenant,
)
from orchestrator.api.routes import Permission, Route, body, path_param
from orchestrator.auth.middleware import ACCESS_KEY
from orchestrator.auth.policy import Access
from orchestrator.catalog.model import MAX_DOCUMENT_BYTES, CatalogError
from orchestrator.catalog.service import (
    Catalog,
    SearchQuery,
    Viewer,
    download_json,
    review_json,
    version_json,
)
from orchestrator.catalog.signing import ALGORITHM

BASE = "/api/v1/catalog"
TEMPLATES = BASE + "/templates"
ONE = TEMPLATES + "/{id}"
VERSION = ONE + "/versions/{version}"
REVIEW = ONE + "/reviews/{reviewer}"
ID = path_param("id", "Template id: lowercase letters, digits and '-'.")
VER = path_param("version", "A semantic version of the template.")
REVIEWER = path_param("reviewer", "The principal who wrote the review.")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    q: str | None = Field(
        default=None, max_length=200, description="Text in the id, title, description, tags."
    )
    category: str | None = Field(default=None, max_length=100)
    tag: str | None = Field(default=None, max_length=100)
    author: str | None = Field(default=None, max_length=200)
    engine: str | None = Field(default=None, max_length=50, description="Templates this engine version runs.")


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rating: int = Field(ge=1, le=5)
    text: str = Field(default="", max_length=5000)


class Moderation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["approve", "reject", "unlist"]
    reason: str | None = Field(default=None, max_length=1000)


class ReviewModeration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["hide", "keep"]
    reason: str | None = Field(default=None, max_length=1000)


class InstallBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: dict[str, Any] = Field(default_factory=dict)


def viewer(request: web.Request) -> Viewer:
    """The caller: a moderator when authentication is off or a grant allows catalog:moderate."""
    access = request.get(ACCESS_KEY)
    moderator = not isinstance(access, Access) or access.unrestricted(Permission.CATALOG_MODERATE.value)
    return Viewer(request_actor(request), moderator)


def refusals(handler: Handler) -> Handler:
    """Answer a CatalogError as its JSON error."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except CatalogError as exc:
            return error_response(exc.status, exc.code, str(exc))

    return answer


class CatalogApi:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def routes(self) -> list[Route]:
        read, review = Permission.CATALOG_READ, Permission.CATALOG_REVIEW
        moderate = Permission.CATALOG_MODERATE
        return [
            Route("GET", BASE + "/key", refusals(self.key), read, "getCatalogKey",
                  "The public Ed25519 key that verifies every version's signature.", "200:CatalogKey"),
            Route("POST", TEMPLATES, refusals(self.publish), Permission.CATALOG_PUBLISH, "publishTemplate",
                  "Publish a template version (pending until a moderator approves it); 200 when that "
                  "content is already published, 409 version_exists for other content.",
                  "201:CatalogVersion 200:CatalogVersion 400 403 409 413", body=body("CatalogDocument")),
            Route("GET", TEMPLATES, refusals(self.search), read, "searchTemplates",
                  "Templates with an approved version (and the caller's own pending ones), each with "
                  "its latest version and rating.", "200:CatalogList 400", query=SearchParams),
            Route("GET", ONE, refusals(self.show), read, "getCatalogTemplate",
                  "A template's latest version, its versions, rating and reviews.", "200:CatalogTemplate 404", (ID,)),
            Route("GET", ONE + "/versions", refusals(self.versions), read, "listTemplateVersions",
                  "The versions the caller may see, oldest first, with status and checksum.",
                  "200:CatalogVersionList 404", (ID,)),
            Route("GET", VERSION, refusals(self.download), read, "downloadTemplate",
                  "One version's document with its checksum and signature.", "200:CatalogDownload 404", (ID, VER)),
            Route("PUT", ONE + "/review", refusals(self.review), review, "reviewTemplate",
                  "Create or replace the caller's rating (1-5) and review.", "201:CatalogReview 200:CatalogReview 400 404",
                  (ID,), body=body(ReviewBody)),
            Route("POST", REVIEW + "/report", refusals(self.report), review, "reportReview",
                  "Report a review to the moderators.", "200:CatalogReview 404", (ID, REVIEWER)),
            Route("POST", VERSION + "/moderation", refusals(self.moderate), moderate, "moderateTemplate",
                  "Approve, reject (with a reason) or unlist a version.", "200:CatalogVersion 400 404",
                  (ID, VER), body=body(Moderation)),
            Route("POST", REVIEW + "/moderation", refusals(self.moderate_review), moderate, "moderateReview",
                  "Hide a reported review, or keep it (clearing its reports).", "200:CatalogReview 400 404",
                  (ID, REVIEWER), body=body(ReviewModeration)),
            Route("POST", VERSION + "/install", refusals(self.install), Permission.TEMPLATES_INSTALL, "installCatalogTemplate",
                  "Install an approved version in the caller's tenant with its parameters.",
                  "201:CatalogInstall 400 404 409 422", (ID, VER, TENANT_PARAM), body=body(InstallBody, required=False)),
        ]  # fmt: skip

    async def key(self, request: web.Request) -> web.Response:
        signer = self.catalog.signer
        return web.json_response({"algorithm": ALGORITHM, "key": signer.public_key, "pem": signer.public_pem})

    async def publish(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_DOCUMENT_BYTES:
            return error_response(
                413, "template_too_large", f"a template document is at most {MAX_DOCUMENT_BYTES} bytes"
            )
        try:
            document = parse_json(raw)
        except ValueError as exc:
            return error_response(400, "invalid_json", f"the body is not JSON: {exc}")
        entry, created = await self.catalog.publish(document, request_actor(request))
        note(request, resource_id=f"{entry.id}@{entry.version}", details={"checksum": entry.checksum})
        return web.json_response(version_json(entry), status=201 if created else 200)

    async def search(self, request: web.Request) -> web.Response:
        params = query_params(request, SearchParams)
        query = SearchQuery(params.q, params.category, params.tag, params.author, params.engine)
        return web.json_response({"items": await self.catalog.search(viewer(request), query)})

    async def show(self, request: web.Request) -> web.Response:
        return web.json_response(await self.catalog.show(viewer(request), request.match_info["id"]))

    async def versions(self, request: web.Request) -> web.Response:
        found = await self.catalog.versions(viewer(request), request.match_info["id"])
        return web.json_response({"items": found})

    async def download(self, request: web.Request) -> web.Response:
        entry = await self.catalog.download(
            viewer(request), request.match_info["id"], request.match_info["version"]
        )
        return web.json_response(download_json(entry, self.catalog.signer.public_key))

    async def review(self, request: web.Request) -> web.Response:
        sent = await json_body(request, ReviewBody)
        who = viewer(request)
        review, created = await self.catalog.review(who, request.match_info["id"], sent.rating, sent.text)
        return web.json_response(review_json(review, who), status=201 if created else 200)

    async def report(self, request: web.Request) -> web.Response:
        who = viewer(request)
        review = await self.catalog.report(who, request.match_info["id"], request.match_info["reviewer"])
        return web.json_response(review_json(review, who))

    async def moderate(self, request: web.Request) -> web.Response:
        sent = await json_body(request, Moderation)
        template_id, version = request.match_info["id"], request.match_info["version"]
        note(request, reason=sent.reason, details={"action": sent.action, "version": version})
        entry = await self.catalog.moderate(template_id, version, sent.action, sent.reason)
        return web.json_response(version_json(entry))

    async def moderate_review(self, request: web.Request) -> web.Response:
        sent = await json_body(request, ReviewModeration)
        template_id, reviewer = request.match_info["id"], request.match_info["reviewer"]
        note(request, reason=sent.reason, details={"action": sent.action, "reviewer": reviewer})
        review = await self.catalog.moderate_review(template_id, reviewer, sent.action)
        return web.json_response(review_json(review, viewer(request)))

    async def install(self, request: web.Request) -> web.Response:
        sent = await json_body(request, InstallBody, optional=True)
        template_id, version = request.match_info["id"], request.match_info["version"]
        tenant = request_tenant(request)
        note(request, details={"version": version, "tenant": tenant})
        result = await self.catalog.install(
            viewer(request), template_id, version, sent.parameters, tenant=tenant
        )
        return web.json_response(result, status=201)
