"""W3C traceparent values: what is accepted, what is ignored, how a call continues a trace."""

from __future__ import annotations

import pytest

from connectors.amqp_publish import build_message
from connectors.base import StepCall
from connectors.kafka_publish import build_record
from connectors.tracing import outbound_traceparent
from orchestrator.core.events import Event
from orchestrator.core.state import evolve
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas import traceparent
from schemas.builder import Workflow
from schemas.definition import KafkaTrigger
from triggers.inbound import InboundMessage, Router

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_value_is_parsed_and_normalised() -> None:
    parsed = traceparent.parse(f"  {VALID}  ")
    assert parsed is not None and str(parsed) == VALID
    assert traceparent.trace_id_of(VALID) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert traceparent.start_metadata(VALID) == {"traceparent": VALID}
    future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"  # a later version may add fields
    assert traceparent.parse(future) is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # version 00 has four fields
    ],
)
def test_an_invalid_value_is_ignored(value: str | None) -> None:
    assert traceparent.parse(value) is None
    assert traceparent.start_metadata(value) == {}


def test_an_outbound_call_continues_the_trace_with_the_attempts_span() -> None:
    call = StepCall(execution_id="e", workflow="w", step="s", attempt=1, idempotency_key="k", traceparent=VALID)
    retry = StepCall(execution_id="e", workflow="w", step="s", attempt=2, idempotency_key="k", traceparent=VALID)
    first, again, second = outbound_traceparent(call), outbound_traceparent(call), outbound_traceparent(retry)
    assert first is not None and second is not None and again == first
    assert traceparent.trace_id_of(first) == traceparent.trace_id_of(VALID)
    assert first.split("-")[2] == traceparent.attempt_span_id("e", "s", 1)
    assert len({first.split("-")[2], second.split("-")[2], VALID.split("-")[2]}) == 3
    untraced = StepCall(execution_id="e", workflow="w", step="s", attempt=1, idempotency_key="k")
    assert outbound_traceparent(untraced) is None
    with pytest.raises(ValueError, match="span id"):
        traceparent.TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01").child("xyz")


def test_the_state_keeps_the_trace_context_the_start_recorded() -> None:
    data = {"execution_id": "e", "workflow": "w", "version": 1, "input": None}
    assert evolve(None, Event("ExecutionStarted", {**data, "metadata": {"traceparent": VALID}})).traceparent == VALID
    assert evolve(None, Event("ExecutionStarted", data)).traceparent is None
    assert evolve(None, Event("ExecutionStarted", {**data, "metadata": {"traceparent": 5}})).traceparent is None


def test_a_published_kafka_record_carries_the_trace_unless_the_step_sets_it() -> None:
    config = {"topic": "orders", "cloudevent": False}
    call = StepCall(
        execution_id="e", workflow="w", step="s", attempt=1, idempotency_key="k", config=config,
        args={"value": {"a": 1}}, traceparent=VALID,
    )  # fmt: skip
    headers = dict(build_record(call).headers)
    assert traceparent.trace_id_of(headers["traceparent"].decode()) == traceparent.trace_id_of(VALID)
    own = StepCall(
        execution_id="e", workflow="w", step="s", attempt=1, idempotency_key="k", config=config,
        args={"value": {"a": 1}, "headers": {"TraceParent": "mine"}}, traceparent=VALID,
    )  # fmt: skip
    assert [v for n, v in build_record(own).headers if n.lower() == "traceparent"] == [b"mine"]


def test_a_published_amqp_message_carries_the_trace() -> None:
    call = StepCall(
        execution_id="e", workflow="w", step="s", attempt=1, idempotency_key="k",
        config={"exchange": "orders", "cloudevent": False}, args={"body": {"a": 1}}, traceparent=VALID,
    )  # fmt: skip
    header = build_message(call).headers["traceparent"]
    assert traceparent.trace_id_of(header) == traceparent.trace_id_of(VALID) and header != VALID


async def test_a_topic_trigger_message_with_a_traceparent_header_records_it() -> None:
    async with Runtime(Settings(event_log_url="memory://")) as runtime:
        await runtime.register(Workflow("traced").task("one", "noop").build())
        router = Router(runtime, "traced", KafkaTrigger.model_validate({"name": "orders", "topics": ["shop.orders"]}))
        traced = await router.accept(InboundMessage({}, "kafka:shop.orders/0/1", headers={"TraceParent": VALID}))
        plain = await router.accept(InboundMessage({}, "kafka:shop.orders/0/2", headers={"traceparent": "junk"}))
        recorded = [
            (await runtime.history(outcome.execution_ids[0]))[0].data.get("metadata") for outcome in (traced, plain)
        ]
    assert recorded == [{"traceparent": VALID}, None]
