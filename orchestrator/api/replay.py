"""``POST /api/v1/replay/verify``: would a version decide the same on recorded executions?"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.requests import MAX_VERSION, TENANT_PARAM, json_body, request_tenant
from orchestrator.api.routes import Permission, Route, body
from orchestrator.api.visibility import tenant_definition
from orchestrator.history.verify import DEFAULT_SAMPLE, MAX_SAMPLE, verify_recorded
from orchestrator.runtime import Runtime


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str = Field(min_length=1)
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="The version to verify; default: the latest."
    )
    sample: int = Field(DEFAULT_SAMPLE, ge=1, le=MAX_SAMPLE, description="Recorded executions, newest first.")
    recorded_version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="Only executions recorded on this version."
    )
    statuses: list[Literal["running", "succeeded", "failed", "cancelled"]] | None = Field(
        None, min_length=1, description="Only executions in these statuses; default: all."
    )


class ReplayApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST", "/api/v1/replay/verify", self.verify, Permission.REPLAY_VERIFY, "verifyReplay",
                "Replay up to `sample` recorded executions of a workflow (in the request's tenant) with "
                "the graph of `version`; the report names each divergence (ok is false when any).",
                "200:ReplayReport 400 404", (TENANT_PARAM,), body=body(VerifyBody),
            )
        ]

    async def verify(self, request: web.Request) -> web.Response:
        """200 with the report on the request tenant's executions (``ok`` false when any diverged);
        404 unknown workflow or version."""
        body = await json_body(request, VerifyBody)
        tenant = request_tenant(request)
        await tenant_definition(self.runtime.registry, body.workflow, tenant, body.version)
        report = await verify_recorded(
            self.runtime.log,
            self.runtime.registry,
            body.workflow,
            body.version,
            body.sample,
            statuses=body.statuses,
            recorded_version=body.recorded_version,
            tenant=tenant,
        )
        return web.json_response(report.to_dict())
