"""One fire of a schedule: its key, execution id, input, and carrying out its decided actions.

A fire's dedup key is ``schedule:<trigger>:<scheduled time, UTC to the millisecond>`` (``manual:``
before the time for a fire triggered by hand), and the execution id is derived from (tenant,
workflow, key) like every trigger's. So a fire time starts at most one execution, however many
processes, restarts or backfills try: the event log's append at sequence 0 refuses the second.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from orchestrator.core.machine import CommandRejected
from orchestrator.ports import UnknownWorkflow
from orchestrator.runtime import ExecutionNotFound, InputInvalid, Runtime, execution_id_for
from schemas.definition import ScheduleTrigger
from schemas.expressions import ExpressionError, evaluate
from schemas.schedule_times import FireTimes, parse_duration, rfc3339_ms
from triggers.inbound import schedule_actor
from triggers.schedule_policy import Kind, Policy

log = logging.getLogger(__name__)


def schedule_key(tenant: str, workflow: str, trigger: str) -> str:
    """Where a schedule's state is stored: the same for every version of the workflow."""
    return f"{tenant}/{workflow}/{trigger}"


def fire_key(trigger: str, time: float, kind: Kind) -> str:
    prefix = "manual:" if kind == "manual" else ""
    return f"schedule:{trigger}:{prefix}{rfc3339_ms(time)}"


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule trigger of one workflow, with its fire times and policy."""

    workflow: str
    trigger: ScheduleTrigger

    @property
    def key(self) -> str:
        return schedule_key(self.trigger.tenant, self.workflow, self.trigger.name)

    @property
    def actor(self) -> str:
        return schedule_actor(self.workflow, self.trigger.name)

    def times(self) -> FireTimes:
        return FireTimes(self.trigger, f"{self.workflow}/{self.trigger.name}")

    def policy(self) -> Policy:
        window = parse_duration(self.trigger.catchup_window, "catchup_window")
        return Policy(self.trigger.catchup, window, self.trigger.overlap)

    def execution_id(self, time: float, kind: Kind) -> str:
        return execution_id_for(self.trigger.tenant, self.workflow, fire_key(self.trigger.name, time, kind))

    def context(self, times: FireTimes, time: float, kind: Kind, catchup: bool) -> dict[str, Any]:
        """What the trigger's ``input`` expression sees (and the input when it has none)."""
        return {
            "scheduled_time": rfc3339_ms(time),
            "scheduled_local": times.local(time),
            "kind": kind,
            "catchup": catchup,
            "schedule": self.trigger.name,
            "workflow": self.workflow,
        }


@dataclass(frozen=True, slots=True)
class Done:
    """How one action went: ``started``, ``duplicate`` (the fire had started before),
    ``cancelled`` (or nothing left to cancel), or ``failed`` with the reason (it never can)."""

    outcome: str
    reason: str = ""


async def carry_out(runtime: Runtime, schedule: Schedule, times: FireTimes, action: dict[str, Any]) -> Done:
    """Do one decided action; doing it again changes nothing. Raises when the outcome is
    unknown (the event log is down): the action stays pending and is tried again."""
    trigger = schedule.trigger
    if action["do"] == "cancel":
        with contextlib.suppress(ExecutionNotFound, CommandRejected):  # gone or finished meanwhile
            await runtime.cancel(
                action["execution_id"], action.get("reason", ""), schedule.actor, tenant=trigger.tenant
            )
        return Done("cancelled")
    time, kind, catchup = float(action["time"]), action["kind"], bool(action.get("catchup"))
    context = schedule.context(times, time, kind, catchup)
    try:
        value = evaluate(trigger.input, context) if trigger.input else context
        result = await runtime.start_execution(
            schedule.workflow,
            value,
            dedup_key=fire_key(trigger.name, time, kind),
            actor=schedule.actor,
            tenant=trigger.tenant,
            metadata={
                "schedule": {
                    "trigger": trigger.name,
                    "scheduled_time": context["scheduled_time"],
                    "kind": kind,
                    "catchup": catchup,
                }
            },
        )
    except (InputInvalid, UnknownWorkflow, ExpressionError) as exc:
        log.warning("schedule %s: the fire of %s cannot start: %s", schedule.key, rfc3339_ms(time), exc)
        return Done("failed", str(exc))
    if result.execution_id != action["execution_id"]:  # pragma: no cover - ids derive the same way
        raise AssertionError(f"{result.execution_id} != {action['execution_id']}")
    return Done("started" if result.created else "duplicate")
