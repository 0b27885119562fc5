"""One inbound message -> one durable outcome: the rule every queue and topic trigger shares.

A source (Kafka, AMQP, ...) turns what it received into an :class:`InboundMessage` and calls
:meth:`Router.accept`. Only when ``accept`` returns may the source acknowledge the message (commit
the offset, ack the delivery): by then the start or the event delivery is durable in the event
log, or the message was filtered, or it is a dead letter that the source must park (with
``Outcome.reason``) before acknowledging. ``accept`` raises only when the outcome is unknown
(e.g. the event log is down): the source must then not acknowledge, and retry or redeliver.

Duplicates: a start's dedup key is the configured ``message_id``, else the CloudEvent id (with its
source), else the transport's identity (Kafka topic/partition/offset, AMQP message id). The
execution id is derived from it, so a redelivered message finds the execution it already started
and starts nothing. An event delivery carries the same key as its event id, which the machine
records, so a redelivered event is not delivered twice either.

Sources report each message's outcome with :meth:`Router.report` once it is durable (a dead
letter: once parked), and ``retried`` when the outcome is unknown and the message comes back.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.instrumentation import TriggerOutcome, guarded
from orchestrator.limits.quotas import QuotaExceeded
from orchestrator.ports import UnknownWorkflow
from orchestrator.runtime import InputInvalid, Runtime
from schemas import strict_json, traceparent
from schemas.cloudevents import BadMessage
from schemas.definition import AmqpTrigger, KafkaTrigger
from schemas.expressions import ExpressionError, evaluate

log = logging.getLogger(__name__)
__all__ = ["BadMessage", "InboundMessage", "Outcome", "Router", "trigger_actor"]

OutcomeKind = Literal["started", "duplicate", "delivered", "filtered", "dead"]
MAX_KEY_LENGTH = 512
REPORTED: dict[str, TriggerOutcome] = {  # Outcome.kind -> what the instruments are told
    "started": "started",
    "duplicate": "duplicate",
    "delivered": "delivered",
    "filtered": "filtered",
    "dead": "dead_lettered",
    "retried": "retried",
}


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A received message, transport-neutral. ``data`` is already decoded (CloudEvent data or the
    JSON body); ``identity`` is the transport's own unique name for this message."""

    data: Any
    identity: str  # e.g. "kafka:orders/3/1042" or "amqp:<message id>"
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    cloudevent: dict[str, Any] | None = None  # the CloudEvent attributes, without data
    message_id: str | None = None  # the transport's message id property, if any
    where: dict[str, Any] = field(default_factory=dict)  # topic/partition/offset or queue/exchange/...

    def context(self) -> dict[str, Any]:
        """What trigger expressions see."""
        return {
            "data": self.data,
            "key": self.key,
            "headers": self.headers,
            "message_id": self.message_id,
            "cloudevent": self.cloudevent,
            **self.where,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    execution_ids: tuple[str, ...] = ()
    reason: str = ""  # for "dead": why, to put in the dead letter's headers


def trigger_actor(workflow: str, trigger: str) -> str:
    """The actor of what a queue, topic or window trigger starts or delivers."""
    return f"trigger:{workflow}/{trigger}"


def webhook_actor(hook: str) -> str:
    """The actor of what a webhook delivery starts or delivers."""
    return f"webhook:{hook}"


def schedule_actor(workflow: str, trigger: str) -> str:
    """The actor of what a schedule starts or cancels."""
    return f"schedule:{workflow}/{trigger}"


def starter_actor(kind: str, workflow: str, trigger: str) -> str:
    """The actor a trigger's starts are recorded with: the executions' ``started_by``."""
    if kind == "webhook":
        return webhook_actor(trigger)
    if kind == "schedule":
        return schedule_actor(workflow, trigger)
    return trigger_actor(workflow, trigger)


def content_identity(prefix: str, body: bytes) -> str:
    """An identity for a message that has no id of its own: the hash of its bytes."""
    return f"{prefix}:sha256:{hashlib.sha256(body).hexdigest()}"


def decode_json(body: bytes) -> Any:
    """A strict JSON body (``schemas.strict_json``), or BadMessage naming what is wrong."""
    try:
        return strict_json.loads(body)
    except strict_json.StrictJSONError as exc:
        raise BadMessage(f"the body is not JSON: {exc}") from None


class Router:
    """Applies one trigger's filter, mapping, dedup and correlation rules to messages."""

    def __init__(self, runtime: Runtime, workflow: str, trigger: KafkaTrigger | AmqpTrigger) -> None:
        self.runtime = runtime
        self.workflow = workflow
        self.trigger = trigger
        self.actor = trigger_actor(workflow, trigger.name)
        self.tenant = trigger.tenant
        self.instruments = guarded(runtime.instruments)

    def report(self, outcome: OutcomeKind | Literal["retried"]) -> None:
        """Tell the instruments how one message ended (``dead`` is reported as ``dead_lettered``)."""
        reported = REPORTED[outcome]
        self.instruments.trigger_outcome(self.trigger.type, self.workflow, self.trigger.name, reported)

    async def accept(self, message: InboundMessage) -> Outcome:
        """The durable outcome of one message (see the module docstring)."""
        context = message.context()
        try:
            if self.trigger.filter and not _truthy(evaluate(self.trigger.filter, context)):
                return Outcome("filtered")
            key = self.dedup_key(message, context)
            if self.trigger.correlation is not None:
                return await self._deliver(context, key)
            value = evaluate(self.trigger.input, context) if self.trigger.input else message.data
        except (ExpressionError, BadMessage, strict_json.StrictJSONError) as exc:  # the same every time
            return Outcome("dead", reason=str(exc))
        try:
            result = await self.runtime.start_execution(
                self.workflow,
                value,
                dedup_key=key,
                actor=self.actor,
                tenant=self.tenant,
                metadata=traceparent.start_metadata(traceparent.header_value(message.headers)),
            )
        except InputInvalid as exc:
            return Outcome("dead", reason=str(exc))
        except UnknownWorkflow as exc:
            return Outcome("dead", reason=str(exc))
        except QuotaExceeded as exc:
            if exc.permanent:  # the same message would exceed it every time
                return Outcome("dead", reason=str(exc))
            raise  # running executions finish: not acknowledged, tried again
        return Outcome("started" if result.created else "duplicate", (result.execution_id,))

    def dedup_key(self, message: InboundMessage, context: dict[str, Any]) -> str:
        """The configured message id, else the CloudEvent's (source, id), else the transport's."""
        if self.trigger.message_id:
            value = evaluate(self.trigger.message_id, context)
            if value is None or value == "":
                raise BadMessage(f"message_id {self.trigger.message_id!r} is empty for this message")
            key = f"id:{value}"
        elif message.cloudevent and message.cloudevent.get("id"):
            key = f"ce:{message.cloudevent.get('source', '')}/{message.cloudevent['id']}"
        else:
            key = message.identity
        if len(key) > MAX_KEY_LENGTH:
            key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        return f"{self.trigger.type}:{self.trigger.name}:{key}"

    async def _deliver(self, context: dict[str, Any], key: str) -> Outcome:
        correlation = self.trigger.correlation
        assert correlation is not None
        raw = evaluate(correlation.key, context)
        if raw is None:
            raise BadMessage(f"correlation key {correlation.key!r} is empty for this message")
        payload = evaluate(correlation.payload, context) if correlation.payload else context["data"]
        delivered = await self.runtime.publish_event(
            correlation.event, str(raw), payload, actor=self.actor, event_id=key, tenant=self.tenant
        )
        if not delivered and correlation.unmatched == "dead_letter":
            reason = (
                f"no execution is waiting for event {correlation.event!r} with key {str(raw)!r}"
                " (or it already took this message)"
            )
            return Outcome("dead", reason=reason)
        return Outcome("delivered", tuple(delivered))


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", [], {}, 0)
