"""``GET /api/v1/audit``: the audit trail of the request's tenant, oldest first, filtered and paged."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from orchestrator.api.requests import TENANT_PARAM, query_params, request_tenant
from orchestrator.api.routes import Permission, Route
from orchestrator.audit.query import AuditQuery, search
from orchestrator.audit.trail import AuditTrail
from orchestrator.core.timefmt import rfc3339


class AuditParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str | None = Field(None, max_length=300, description="A subject, or kind:subject (key:alice).")
    action: str | None = Field(None, max_length=200, description="resource:verb; * matches anything.")
    resource: str | None = Field(None, max_length=500, description="A type, or type/id; * matches anything.")
    since: AwareDatetime | None = Field(None, description="Records at or after this time.")
    until: AwareDatetime | None = Field(None, description="Records before this time.")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,19}$", description="next_cursor of the page before.")


def _time(value: datetime | None) -> str | None:
    try:
        return None if value is None else rfc3339(value.timestamp())
    except (ValueError, OverflowError):
        raise web.HTTPBadRequest(reason="Invalid Parameter", text=f"{value} is out of range in UTC") from None


class AuditApi:
    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", "/api/v1/audit", self.list_records, Permission.AUDIT_READ, "listAuditRecords",
                "The tenant's audit records, oldest first (filters combine; a page scans at most "
                "10,000 records, so follow next_cursor until it is null).",
                "200:AuditPage 400", (TENANT_PARAM,), query=AuditParams,
            )
        ]  # fmt: skip

    async def list_records(self, request: web.Request) -> web.Response:
        params = query_params(request, AuditParams)
        query = AuditQuery(
            actor=params.actor,
            action=params.action,
            resource=params.resource,
            tenant=request_tenant(request),
            since=_time(params.since),
            until=_time(params.until),
            after=min(int(params.cursor or 0), 2**63 - 1),  # past the last record: an empty page
            limit=params.limit,
        )
        page = await search(self.trail.log, query)
        return web.json_response(
            {
                "items": [sealed.to_dict() for sealed in page.items],
                "next_cursor": None if page.next_cursor is None else str(page.next_cursor),
            }
        )
