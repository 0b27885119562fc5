"""JSON errors for every HTTP endpoint: known exceptions map to statuses, nothing leaks a traceback."""

from __future__ import annotations

import logging
import math
from typing import Any

from aiohttp import web

from orchestrator.core.machine import CommandRejected, SignalBufferFull
from orchestrator.limits.quotas import QuotaExceeded, StartRateExceeded
from orchestrator.ports import (
    BackendUnavailable,
    ConcurrencyError,
    HookTaken,
    NameTaken,
    Overloaded,
    UnknownExecution,
    UnknownTrigger,
    UnknownWorkflow,
    VersionConflict,
)
from orchestrator.runtime import InputInvalid
from schemas.envelope import EnvelopeError
from schemas.expressions import ExpressionError
from schemas.strict_json import StrictJSONError
from schemas.tenant import TenantInvalid
from schemas.validation import DefinitionError

log = logging.getLogger(__name__)


RETRY_AFTER_SECONDS = 1  # what a 503 or a 409 conflict suggests: contention is short-lived


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The one error shape: ``{"error": {"code", "message", "details"}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status, headers=headers)


def problems_details(problems: list[Any]) -> list[dict[str, str]]:
    return [{"location": p.location, "message": p.message} for p in problems]


def response_for(exc: Exception) -> web.Response | None:
    """The response for a known domain exception, else None."""
    if isinstance(exc, DefinitionError):
        return error_response(
            400, "invalid_definition", "the definition is invalid", problems_details(exc.problems)
        )
    if isinstance(exc, InputInvalid):
        return error_response(
            400,
            "invalid_input",
            "the input does not match the input schema",
            problems_details(exc.problems),
        )
    if isinstance(exc, TenantInvalid):
        return error_response(400, "invalid_tenant", str(exc))
    if isinstance(exc, UnknownWorkflow):
        return error_response(404, "unknown_workflow", str(exc))
    if isinstance(exc, UnknownTrigger):
        return error_response(404, "unknown_trigger", str(exc))
    if isinstance(exc, UnknownExecution):  # runtime.ExecutionNotFound, or the engine's check
        return error_response(404, "unknown_execution", str(exc))
    if isinstance(exc, VersionConflict):
        return error_response(409, "version_conflict", str(exc))
    if isinstance(exc, HookTaken):
        return error_response(409, "hook_taken", str(exc))
    if isinstance(exc, NameTaken):
        return error_response(409, "workflow_name_taken", str(exc))
    if isinstance(exc, SignalBufferFull):
        return error_response(409, "signal_buffer_full", str(exc))
    if isinstance(exc, CommandRejected):
        return error_response(409, "rejected", str(exc))
    if isinstance(exc, ConcurrencyError):  # still contended after the engine's retries
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        message = f"execution {exc.execution_id} was changed by another writer meanwhile; try again"
        return error_response(409, "concurrency_conflict", message, headers=retry)
    if isinstance(exc, QuotaExceeded):
        details = [{"quota": exc.quota, "tenant": exc.tenant, "limit": exc.limit, "usage": exc.usage}]
        return error_response(403, "quota_exceeded", str(exc), details)
    if isinstance(exc, StartRateExceeded):
        details = [{"quota": exc.quota, "tenant": exc.tenant, "limit": exc.limit}]
        retry = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return error_response(429, "quota_exceeded", str(exc), details, headers=retry)
    if isinstance(exc, Overloaded):
        retry = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return error_response(429, "overloaded", str(exc), headers=retry)
    if isinstance(exc, BackendUnavailable):
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(503, "backend_unavailable", str(exc), headers=retry)
    if isinstance(exc, StrictJSONError):
        return error_response(400, "invalid_json", f"not strict JSON: {exc}")
    if isinstance(exc, ExpressionError):
        return error_response(400, "invalid_expression", str(exc))
    if isinstance(exc, EnvelopeError):  # a stored event that does not decode or decrypt: not the caller's fault
        log.error("a stored event does not decode: %s", exc)
        return error_response(500, "undecodable_event", str(exc))
    return None


def exception_response(request: web.Request, exc: Exception) -> web.Response:
    """The JSON error answering an exception a handler raised (an HTTP error of 400 or more
    keeps its status); an unknown one is logged with its traceback (call it in ``except``)."""
    if isinstance(exc, web.HTTPException):
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    known = response_for(exc)
    if known is not None:
        return known
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal", "internal error; see the server log")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn exceptions into JSON errors; aiohttp's own HTTP errors keep their status."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return exception_response(request, exc)
    except Exception as exc:
        return exception_response(request, exc)
