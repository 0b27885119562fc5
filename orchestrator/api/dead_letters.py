"""Dead-letter routes: list the parked poison commands and submit one again.

``GET /api/v1/dead-letters/commands`` pages through them oldest first (``limit``, ``cursor``);
``POST /api/v1/dead-letters/commands/{id}/redrive`` submits the parked command again (it stays
listed: a command that fails again is parked again, as a new dead letter). The same in every
mode: the Kafka transport's dead-letter topic, or the in-process store (``Runtime.dead_letters``).
Both see only the request tenant's letters (a letter records its command's tenant); another
tenant's is 404 ``unknown_dead_letter``.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.errors import error_response
from orchestrator.api.requests import TENANT_PARAM, query_params, request_tenant
from orchestrator.api.routes import Permission, Route, path_param
from orchestrator.ports import UnknownDeadLetter
from orchestrator.runtime import Runtime

DEAD_LETTERS = "/api/v1/dead-letters/commands"
ID = path_param("id", "Dead letter id (its position in the dead-letter store).")


class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[0-9]+$")


class DeadLettersApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", DEAD_LETTERS, self.list_letters, Permission.DEADLETTERS_READ, "listDeadLetters",
                "Commands parked after failing for a reason retrying does not cure, oldest first, "
                "paged by next_cursor.",
                "200:DeadLetterPage 400", (TENANT_PARAM,), query=ListParams,
            ),
            Route(
                "POST", DEAD_LETTERS + "/{id}/redrive", self.redrive, Permission.DEADLETTERS_REDRIVE,
                "redriveDeadLetter",
                "Submit a parked command again; it stays listed (parked again if it fails again).",
                "200:DeadLetterRedriven 404", (ID, TENANT_PARAM),
            ),
        ]  # fmt: skip

    async def list_letters(self, request: web.Request) -> web.Response:
        params = query_params(request, ListParams)
        page = await self.runtime.dead_letters.list(params.limit, params.cursor, request_tenant(request))
        return web.json_response(
            {"items": [letter.to_dict() for letter in page.items], "next_cursor": page.next_cursor}
        )

    async def redrive(self, request: web.Request) -> web.Response:
        letter_id = request.match_info["id"]
        try:
            letter = await self.runtime.dead_letters.redrive(letter_id, request_tenant(request))
        except UnknownDeadLetter as exc:
            return error_response(404, "unknown_dead_letter", str(exc))
        return web.json_response({**letter.to_dict(), "redriven": True})
