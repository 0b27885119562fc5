"""Audit records of the worker's secret resolutions (``orchestrator.engine.secret_refs.SecretReads``).

One record per secret name per step attempt that references it: action ``secrets:resolve``,
actor ``execution:<id>`` (the execution whose step asked), resource ``secrets/<NAME>``, the
execution's tenant, outcome ``ok``, ``failed`` (not set) or ``error`` (the store could not
answer), and the workflow, step and attempt in the details. Never the value. A record that
cannot be appended is logged loudly and the step goes on, as for HTTP requests.
"""

from __future__ import annotations

import logging
from typing import cast

from orchestrator.audit.record import Actor, Outcome, Resource
from orchestrator.audit.trail import AuditTrail
from orchestrator.ports import StepTask

log = logging.getLogger(__name__)

ACTION = "secrets:resolve"


class SecretReadAudit:
    """Records each resolution into ``trail``."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    async def secret_read(self, task: StepTask, name: str, outcome: str, reason: str | None) -> None:
        try:
            await self.trail.record(
                ACTION,
                actor=Actor(task.execution_id, "execution"),
                resource=Resource("secrets", name),
                tenant=task.tenant,
                outcome=cast(Outcome, outcome),
                reason=reason,
                details={"workflow": task.workflow, "step": task.step, "attempt": task.attempt},
            )
        except Exception:  # the step runs on; what is missing is said loudly
            log.exception("audit record NOT written: %s %s by execution %s", ACTION, name, task.execution_id)
