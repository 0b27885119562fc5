"""The RabbitMQ trigger against a real broker: starts, routing, CloudEvents, dedup, correlation,
dead letters, prefetch, a SIGKILLed server and a broker restart.

Each test uses its own queue names. Messages are published by real external clients
(``rabbitmqadmin`` through the management API, and plain aio-pika); the broker's own view
(queue depths, unacknowledged counts) comes from the management HTTP API.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from orchestrator.core.state import ExecutionState
from orchestrator.ports import ExecutionQuery
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition
from triggers.amqp_source import AmqpTriggerSource
from triggers.sources import SourceSpec

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"


# -- helpers: the broker seen from outside ------------------------------------------------------


RUN = f"test.amqp-trigger.{uuid.uuid4().hex[:8]}."  # every queue and exchange here starts so


def unique(name: str) -> str:
    return f"{RUN}{name}.{uuid.uuid4().hex[:10]}"


class Broker:
    """The management API and rabbitmqadmin, for the RabbitMQ behind ``amqp_url``."""

    def __init__(self, amqp_url: str) -> None:
        parts = urllib.parse.urlsplit(amqp_url)
        self.amqp_url = amqp_url
        self.host = parts.hostname or "127.0.0.1"
        self.user = urllib.parse.unquote(parts.username or "guest")
        self.password = urllib.parse.unquote(parts.password or "guest")
        self.port = int(os.environ.get("ORCHESTRATOR_TEST_AMQP_MANAGEMENT_PORT", "15672"))

    def api(self, path: str) -> Any:
        request = urllib.request.Request(f"http://{self.host}:{self.port}/api/{path}")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def call(self, method: str, path: str) -> None:
        request = urllib.request.Request(f"http://{self.host}:{self.port}/api/{path}", method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def delete_everything_named(self, prefix: str) -> None:
        """Remove the queues and exchanges this module declared."""
        for kind in ("queues", "exchanges"):
            for item in self.api(f"{kind}/%2F"):
                if item["name"].startswith(prefix):
                    self.call("DELETE", f"{kind}/%2F/{urllib.parse.quote(item['name'], safe='')}")

    def queue(self, name: str) -> dict[str, Any]:
        """The queue as the management API shows it (counters refresh every few seconds)."""
        info: dict[str, Any] = self.api(f"queues/%2F/{urllib.parse.quote(name, safe='')}")
        return info

    def admin(self, *args: str) -> str:
        command = [
            "rabbitmqadmin",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--username={self.user}",
            f"--password={self.password}",
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def publish_cli(self, queue: str, payload: str, properties: dict[str, Any] | None = None) -> None:
        """``rabbitmqadmin publish`` to the default exchange (routing key = the queue)."""
        args = ["publish", "exchange=amq.default", f"routing_key={queue}", f"payload={payload}"]
        if properties is not None:
            args.append(f"properties={json.dumps(properties)}")
        out = self.admin(*args)
        assert "Message published" in out, out

    def get_cli(self, queue: str, count: int = 100) -> list[dict[str, Any]]:
        """``rabbitmqadmin get`` (consuming): the messages, with their properties."""
        out = self.admin(
            "-f", "raw_json", "get", f"queue={queue}", f"count={count}", "ackmode=ack_requeue_false"
        )
        messages: list[dict[str, Any]] = json.loads(out)
        return messages


async def publish(
    amqp_url: str,
    routing_key: str,
    bodies: list[bytes],
    *,
    exchange: str = "",
    **properties: Any,
) -> None:
    """Plain aio-pika with publisher confirms; ``properties`` as aio_pika.Message takes them,
    ``message_id`` may be a callable of the index."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
        for index, body in enumerate(bodies):
            props = {k: (v(index) if callable(v) else v) for k, v in properties.items()}
            props.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
            await target.publish(aio_pika.Message(body, **props), routing_key=routing_key)
    finally:
        await connection.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(0.1)


async def executions(runtime: Runtime, workflow: str) -> list[ExecutionState]:
    states, cursor = [], None
    while True:
        page = await runtime.list_executions(ExecutionQuery(workflow=workflow, limit=500, cursor=cursor))
        for item in page.items:
            states.append(await runtime.state(item.execution_id))
        cursor = page.next_cursor
        if cursor is None:
            return states


# -- helpers: the workflows and the source ------------------------------------------------------


def orders(queue: str, workflow: str = "orders", **trigger: Any) -> dict[str, Any]:
    """A workflow that needs ``{"order": ...}`` and returns its input, triggered from ``queue``."""
    return {
        "name": workflow,
        "input_schema": {"type": "object", "required": ["order"]},
        "triggers": [{"type": "amqp", "name": "from_queue", "queue": queue, **trigger}],
        "steps": [{"name": "done", "type": "succeed", "output": "input"}],
    }


@pytest.fixture
async def runtime(tmp_path: Path, amqp_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(auth=False,
        event_log_url=f"sqlite:///{tmp_path}/amqp.db",
        retention_interval=0,
        connections={"amqp": amqp_url},
    )
    async with Runtime(settings) as runtime:
        yield runtime


@pytest.fixture
def broker(amqp_url: str) -> Broker:
    return Broker(amqp_url)


@pytest.fixture(scope="module", autouse=True)
def _clean_broker(amqp_url: str) -> Iterator[None]:
    yield
    Broker(amqp_url).delete_everything_named(RUN)


@asynccontextmanager
async def consuming(
    runtime: Runtime, definition: dict[str, Any], **extra: Any
) -> AsyncIterator[AmqpTriggerSource]:
    stored = await runtime.register(WorkflowDefinition.model_validate(definition))
    assert stored.version is not None
    spec = SourceSpec(stored.name, stored.version, stored.triggers[0], runtime, runtime.settings, extra)
    source = AmqpTriggerSource(spec)
    await source.start()
    try:
        yield source
    finally:
        await source.stop()


async def inputs(runtime: Runtime, workflow: str, count: int, timeout: float = 20.0) -> list[Any]:
    """The inputs of the workflow's executions, once there are ``count`` of them (and all finished)."""

    async def ready() -> bool:
        found = await executions(runtime, workflow)
        return len(found) >= count and all(s.terminal for s in found)

    await eventually(ready, timeout, f"{count} finished executions of {workflow}")
    return sorted((s.input for s in await executions(runtime, workflow)), key=json.dumps)


# -- starts, routing, CloudEvents ---------------------------------------------------------------


async def test_rabbitmqadmin_and_aio_pika_messages_start_executions(
    runtime: Runtime, broker: Broker, amqp_url: str
) -> None:
    queue = unique("start")
    async with consuming(runtime, orders(queue)) as source:
        await asyncio.to_thread(broker.publish_cli, queue, '{"order": "A-1"}', {"message_id": "m-1"})
        await publish(
            amqp_url, queue, [b'{"order": "A-2"}'], message_id="m-2", content_type="application/json"
        )
        assert await inputs(runtime, "orders", 2) == [{"order": "A-1"}, {"order": "A-2"}]
        assert source.stats.started == 2
        assert source.stats.received == 2
    states = await executions(runtime, "orders")
    assert {s.dedup_key for s in states} == {"amqp:from_queue:amqp:m-1", "amqp:from_queue:amqp:m-2"}
    assert all(s.status == "succeeded" for s in states)
    for state in states:  # the trigger is the actor of the start; the tenant is its default
        history = await runtime.history(state.execution_id)
        assert history[0].actor == "trigger:orders/from_queue" and state.started_by == history[0].actor
        assert {e.tenant for e in history} == {"default"}
    await eventually(lambda: _drained(broker, queue), 15, f"{queue} empty")


async def _drained(broker: Broker, queue: str) -> bool:
    info = await asyncio.to_thread(broker.queue, queue)
    return bool(info.get("messages") == 0 and info.get("messages_unacknowledged") == 0)


async def test_an_existing_quorum_queue_is_used_as_it_is(runtime: Runtime, broker: Broker) -> None:
    queue = unique("quorum")
    await asyncio.to_thread(
        broker.admin, "declare", "queue", f"name={queue}", "durable=true", "queue_type=quorum"
    )
    async with consuming(runtime, orders(queue)):
        await asyncio.to_thread(broker.publish_cli, queue, '{"order": "Q-1"}', {"message_id": "q-1"})
        assert await inputs(runtime, "orders", 1) == [{"order": "Q-1"}]
    info = await asyncio.to_thread(broker.queue, queue)
    assert info["type"] == "quorum"


async def test_exchange_binding_key_routes_and_input_mapping_sees_the_context(
    runtime: Runtime, amqp_url: str
) -> None:
    queue, exchange = unique("routed"), unique("exchange")
    definition = orders(
        queue,
        exchange=exchange,
        exchange_type="topic",
        binding_key="orders.eu.*",
        input=(
            "{order: data.order, rk: routing_key, ex: exchange, q: queue, "
            "tenant: headers.tenant, again: redelivered}"
        ),
    )
    async with consuming(runtime, definition):
        await publish(
            amqp_url,
            "orders.eu.created",
            [b'{"order": "E-1"}'],
            exchange=exchange,
            message_id="e-1",
            headers={"tenant": "acme"},
        )
        await publish(
            amqp_url, "orders.us.created", [b'{"order": "U-1"}'], exchange=exchange, message_id="u-1"
        )
        await publish(
            amqp_url,
            "orders.eu.paid",
            [b'{"order": "E-2"}'],
            exchange=exchange,
            message_id="e-2",
            headers={"tenant": 7},
        )
        got = await inputs(runtime, "orders", 2)
        await asyncio.sleep(0.5)  # the unbound routing key must not have arrived meanwhile
        assert len(await executions(runtime, "orders")) == 2
    assert got == [
        {
            "order": "E-1",
            "rk": "orders.eu.created",
            "ex": exchange,
            "q": queue,
            "tenant": "acme",
            "again": False,
        },
        {"order": "E-2", "rk": "orders.eu.paid", "ex": exchange, "q": queue, "tenant": "7", "again": False},
    ]


async def test_cloudevents_binary_and_structured(runtime: Runtime, amqp_url: str) -> None:
    queue = unique("ce")
    definition = orders(queue, input="{order: data.order, type: cloudevent.type, source: cloudevent.source}")
    async with consuming(runtime, definition) as source:
        # Binary mode: attributes as cloudEvents_* application properties, the body is the data.
        binary = {
            "cloudEvents_specversion": "1.0",
            "cloudEvents_id": "evt-1",
            "cloudEvents_source": "/shop",
            "cloudEvents_type": "order.created",
        }
        await publish(amqp_url, queue, [b'{"order": "C-1"}'], headers=binary, content_type="application/json")
        # Structured mode: the whole event in the body.
        event = {
            "specversion": "1.0",
            "id": "evt-2",
            "source": "/shop",
            "type": "order.paid",
            "datacontenttype": "application/json",
            "data": {"order": "C-2"},
        }
        await publish(
            amqp_url, queue, [json.dumps(event).encode()], content_type="application/cloudevents+json"
        )
        # The same CloudEvent again (no message_id; its identity is source + id): no second start.
        await publish(amqp_url, queue, [b'{"order": "C-1"}'], headers=binary, content_type="application/json")
        await eventually(lambda: _count(source, 3), what="three deliveries")
        assert await inputs(runtime, "orders", 2) == [
            {"order": "C-1", "type": "order.created", "source": "/shop"},
            {"order": "C-2", "type": "order.paid", "source": "/shop"},
        ]
        assert (source.stats.started, source.stats.duplicates) == (2, 1)
    keys = {s.dedup_key for s in await executions(runtime, "orders")}
    assert keys == {"amqp:from_queue:ce:/shop/evt-1", "amqp:from_queue:ce:/shop/evt-2"}


async def _count(source: AmqpTriggerSource, handled: int) -> bool:
    s = source.stats
    return s.started + s.duplicates + s.delivered + s.filtered + s.dead_lettered >= handled


# -- dedup and correlation ----------------------------------------------------------------------


async def test_message_id_dedup_and_body_hash_without_one(
    runtime: Runtime, broker: Broker, amqp_url: str
) -> None:
    queue = unique("dedup")
    async with consuming(runtime, orders(queue)) as source:
        for _ in range(2):
            await asyncio.to_thread(broker.publish_cli, queue, '{"order": "D-1"}', {"message_id": "dup-1"})
        # Same id, another body: still the same message (the id wins).
        await publish(amqp_url, queue, [b'{"order": "D-1-changed"}'], message_id="dup-1")
        # No message_id (rabbitmqadmin sets none): the body's hash is the identity, so identical
        # bodies are one message.
        for payload in ('{"order": "N-1"}', '{"order": "N-1"}', '{"order": "N-2"}'):
            await asyncio.to_thread(broker.publish_cli, queue, payload)
        # aio-pika (aiormq) gives every message without one a random message_id: identical bodies
        # published that way are distinct messages.
        await publish(amqp_url, queue, [b'{"order": "P-1"}', b'{"order": "P-1"}'])
        await eventually(lambda: _count(source, 8), what="eight deliveries")
        assert (source.stats.started, source.stats.duplicates) == (5, 3)
    got = await inputs(runtime, "orders", 5)
    assert got == [{"order": "D-1"}, {"order": "N-1"}, {"order": "N-2"}, {"order": "P-1"}, {"order": "P-1"}]
    keys = [s.dedup_key or "" for s in await executions(runtime, "orders")]
    assert keys.count("amqp:from_queue:amqp:dup-1") == 1
    assert sum(k.startswith("amqp:from_queue:amqp:sha256:") for k in keys) == 2


def approval(queue: str) -> dict[str, Any]:
    return {
        "name": "approval",
        "input_schema": {"type": "object", "required": ["request"]},
        "triggers": [
            {
                "type": "amqp",
                "name": "decisions",
                "queue": queue,
                "correlation": {"event": "decided", "key": "data.request", "payload": "data.decision"},
            }
        ],
        "steps": [
            {
                "name": "wait",
                "type": "wait_for_event",
                "event": "decided",
                "correlation_key": "input.request",
                "next": "done",
            },
            {"name": "done", "type": "succeed", "output": "steps.wait"},
        ],
    }


async def test_correlation_delivers_to_the_waiting_execution_once(runtime: Runtime, amqp_url: str) -> None:
    queue = unique("decisions")
    async with consuming(runtime, approval(queue)) as source:
        waiting = await runtime.start_execution("approval", {"request": "r-1"})
        other = await runtime.start_execution("approval", {"request": "r-2"})
        elsewhere = await runtime.start_execution("approval", {"request": "r-1"}, tenant="acme")

        async def both_waiting() -> bool:
            return all([bool(await runtime.waits.waiting(("decided", r))) for r in ("r-1", "r-2")])

        await eventually(both_waiting, what="both executions waiting")
        body = json.dumps({"request": "r-1", "decision": {"approved": True}}).encode()
        await publish(amqp_url, queue, [body, body], message_id="decision-1")
        state = await runtime.wait(waiting.execution_id, timeout=20)
        assert state.status == "succeeded"
        assert state.output == {"approved": True}
        await eventually(lambda: _count(source, 2), what="both copies handled")
        # A redelivered event is not delivered twice: the copy reaches nobody and is parked
        # (unmatched: dead_letter), never silently dropped; the other execution still waits.
        assert source.stats.delivered == 1
        assert source.stats.dead_lettered == 1
        assert len(state.event_ids) == 1
        assert (await runtime.state(other.execution_id)).status == "running"
        # the trigger delivers within its tenant: the same key waiting in another one is not reached
        assert (await runtime.state(elsewhere.execution_id, tenant="acme")).status == "running"
        received = [e for e in await runtime.history(waiting.execution_id) if e.type == "EventReceived"]
        assert [e.actor for e in received] == ["trigger:approval/decisions"]


# -- dead letters, prefetch ---------------------------------------------------------------------


async def test_bad_messages_are_dead_lettered_with_the_reason_then_acked(
    runtime: Runtime, broker: Broker, amqp_url: str
) -> None:
    queue = unique("bad")
    async with consuming(runtime, orders(queue)) as source:
        await asyncio.to_thread(broker.publish_cli, queue, "not json at all", {"message_id": "bad-1"})
        await publish(amqp_url, queue, [b'{"no_order": 1}'], message_id="bad-2", headers={"origin": "test"})
        await eventually(lambda: _count(source, 2), what="two bad messages handled")
        assert source.stats.dead_lettered == 2
        await publish(amqp_url, queue, [b'{"order": "G-1"}'], message_id="good-1")
        assert await inputs(runtime, "orders", 1) == [{"order": "G-1"}]
        await eventually(lambda: _drained(broker, queue), 15, f"{queue} empty (originals acked)")
    dead = await asyncio.to_thread(broker.get_cli, f"{queue}.dead")
    by_id = {m["properties"]["message_id"]: m for m in dead}
    assert sorted(by_id) == ["bad-1", "bad-2"]
    not_json = by_id["bad-1"]
    assert not_json["payload"] == "not json at all"
    headers = not_json["properties"]["headers"]
    assert "not JSON" in headers["x-orchestrator-error"]
    assert headers["x-orchestrator-trigger"] == "from_queue"
    assert headers["x-orchestrator-workflow"] == "orders"
    assert headers["x-orchestrator-routing-key"] == queue
    assert not_json["properties"]["delivery_mode"] == 2
    invalid = by_id["bad-2"]["properties"]["headers"]
    assert "'order' is a required property" in invalid["x-orchestrator-error"]
    assert invalid["origin"] == "test"
    assert by_id["bad-2"]["routing_key"] == queue
    assert [s.input for s in await executions(runtime, "orders")] == [{"order": "G-1"}]


POISON = [  # (body, what the dead letter's reason says); the filter needs comparable items
    (b'{"order": 1, "items": [' + b"7" * 5000 + b"]}", "longer than 4300 digits"),
    (b'{"order": ' + b"[" * 50_000, "nested deeper than"),
    (b'{"order": "\xff"}', "not UTF-8"),
    (b'{"order": 1, "items": [NaN]}', "NaN is not valid JSON"),
    (b'{"order": 1, "items": -1e400}', "too large for a JSON number"),
    (b'{"order": 1, "items": [{"k": 1}, {"k": "x"}]}', "cannot compare these values"),
]


async def test_undecodable_messages_and_failing_expressions_are_dead_lettered(
    runtime: Runtime, broker: Broker, amqp_url: str
) -> None:
    """Before, a filter comparing a string with a number raised out of the router: the delivery
    was requeued forever. Each poison message is parked with its reason, then acked."""
    queue = unique("poison")
    definition = orders(queue, filter="max_by(data.items, &k) != null")
    async with consuming(runtime, definition) as source:
        await publish(amqp_url, queue, [body for body, _ in POISON], message_id=lambda i: f"bad-{i}")
        await eventually(lambda: _count(source, len(POISON)), what="every poison message handled")
        await publish(amqp_url, queue, [b'{"order": "G", "items": [{"k": 1}]}'], message_id="good")
        assert await inputs(runtime, "orders", 1) == [{"order": "G", "items": [{"k": 1}]}]
        assert source.stats.dead_lettered == len(POISON)
        await eventually(lambda: _drained(broker, queue), 15, f"{queue} empty (originals acked)")
    reasons = await dead_letter_reasons(amqp_url, f"{queue}.dead", len(POISON))
    for index, (_, expected) in enumerate(POISON):
        assert expected in reasons[f"bad-{index}"], reasons[f"bad-{index}"]


async def dead_letter_reasons(amqp_url: str, queue: str, count: int) -> dict[str, str]:
    """message id -> the x-orchestrator-error of the first ``count`` messages parked in ``queue``."""
    connection = await aio_pika.connect(amqp_url)
    found: dict[str, str] = {}
    try:
        channel = await connection.channel()
        parked = await channel.get_queue(queue, ensure=False)
        async with asyncio.timeout(20):
            while len(found) < count:
                message = await parked.get(fail=False)
                if message is None:
                    await asyncio.sleep(0.1)
                    continue
                await message.ack()
                found[str(message.message_id)] = str((message.headers or {})["x-orchestrator-error"])
    finally:
        await connection.close()
    return found


async def test_a_custom_dead_letter_exchange_is_used(runtime: Runtime, broker: Broker, amqp_url: str) -> None:
    queue, dlx = unique("custom"), unique("dlx")
    async with consuming(runtime, orders(queue, dead_letter_exchange=dlx)) as source:
        await publish(amqp_url, queue, [b"[1, 2"], message_id="x")
        await eventually(lambda: _count(source, 1), what="the dead letter")
    bindings = await asyncio.to_thread(
        broker.api, f"exchanges/%2F/{urllib.parse.quote(dlx, safe='')}/bindings/source"
    )
    assert [b["destination"] for b in bindings] == [f"{queue}.dead"]
    dead = await asyncio.to_thread(broker.get_cli, f"{queue}.dead")
    assert [m["payload"] for m in dead] == ["[1, 2"]


async def test_prefetch_bounds_unacknowledged_deliveries(
    runtime: Runtime, broker: Broker, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, prefetch, total = unique("prefetch"), 3, 10
    original = runtime.start_execution
    release = asyncio.Event()

    async def held_start(*args: Any, **kwargs: Any) -> Any:
        await release.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(runtime, "start_execution", held_start)
    async with consuming(runtime, orders(queue, prefetch=prefetch)) as source:
        bodies = [json.dumps({"order": i}).encode() for i in range(total)]
        await publish(amqp_url, queue, bodies, message_id=lambda i: f"p-{i}")
        # Every start is held: the broker has handed out exactly `prefetch` and holds the rest back
        # (its management counters refresh every few seconds, hence the wait).
        await eventually(lambda: _broker_shows(broker, queue, prefetch, total - prefetch), 20, "the counters")
        assert source.in_flight == prefetch
        assert source.stats.received == prefetch
        release.set()
        got = await inputs(runtime, "orders", total)
    assert got == sorted(({"order": i} for i in range(total)), key=json.dumps)
    assert source.peak_in_flight == prefetch  # concurrent up to the prefetch, never beyond
    assert source.stats.started == total


async def _broker_shows(broker: Broker, queue: str, unacked: int, ready: int) -> bool:
    info = await asyncio.to_thread(broker.queue, queue)
    return (info.get("messages_unacknowledged"), info.get("messages_ready")) == (unacked, ready)


async def test_an_unknown_outcome_is_requeued_not_acked(
    runtime: Runtime, broker: Broker, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = unique("unknown")
    original = runtime.start_execution
    failures: list[Any] = []

    async def failing_twice(*args: Any, **kwargs: Any) -> Any:
        if len(failures) < 2:
            failures.append(args)
            raise OSError("event log unavailable")
        return await original(*args, **kwargs)

    monkeypatch.setattr(runtime, "start_execution", failing_twice)
    async with consuming(runtime, orders(queue), retry_delay=0.2) as source:
        await publish(amqp_url, queue, [b'{"order": "R-1"}'], message_id="r-1")
        assert await inputs(runtime, "orders", 1) == [{"order": "R-1"}]
        assert source.stats.received == 3  # delivered, requeued twice, then started
        assert source.stats.started == 1
        assert source.stats.dead_lettered == 0
        assert "event log unavailable" in (source.stats.last_error or "")
    assert len(failures) == 2
    await eventually(lambda: _drained(broker, queue), 15, f"{queue} empty")


async def test_stop_abandons_a_delivery_in_hand_unacknowledged(
    runtime: Runtime, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = unique("stop")
    original = runtime.start_execution
    never = asyncio.Event()

    async def stuck_start(*args: Any, **kwargs: Any) -> Any:
        await never.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(runtime, "start_execution", stuck_start)
    async with consuming(runtime, orders(queue), stop_timeout=0.5) as source:
        await publish(amqp_url, queue, [b'{"order": "S-1"}'], message_id="s-1")
        await eventually(lambda: _in_hand(source, 1), what="the delivery in hand")
    assert source.stats.started == 0
    assert await _ready_now(amqp_url, queue) == 1  # back in the queue, not acknowledged
    monkeypatch.setattr(runtime, "start_execution", original)
    async with consuming(runtime, orders(queue)) as again:
        assert await inputs(runtime, "orders", 1) == [{"order": "S-1"}]
    assert again.stats.started == 1
    assert await _ready_now(amqp_url, queue) == 0


async def _ready_now(amqp_url: str, queue: str) -> int:
    """Messages ready in the queue, straight from the broker (a passive declare, no stats lag)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)
    finally:
        await connection.close()


# -- a SIGKILLed server, a restarted broker -----------------------------------------------------

HOLD_HOOK = Path(__file__).resolve().parent / "amqp_hold"


def services(*args: str) -> None:
    result = subprocess.run([str(SERVICES), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.fixture
def restore_rabbitmq() -> Iterator[None]:
    """Whatever the test does to RabbitMQ, it is running again afterwards."""
    try:
        yield
    finally:
        services("start", "rabbitmq")


def server_listing(url: str, workflow: str) -> list[dict[str, Any]]:
    from tests.e2e.serverproc import http_json

    status, body = http_json("GET", f"{url}/api/v1/executions?workflow={workflow}&limit=500")
    assert status == 200, body
    items: list[dict[str, Any]] = body["items"]
    return items


def trigger_stats(url: str, workflow: str) -> dict[str, Any]:
    from tests.e2e.serverproc import http_json

    status, body = http_json("GET", f"{url}/api/v1/triggers")
    assert status == 200, body
    (view,) = [t for t in body["triggers"] if t["workflow"] == workflow]
    stats: dict[str, Any] = view["stats"]
    return stats


async def test_a_server_killed_between_start_and_ack_gets_every_message_again(
    tmp_path: Path, amqp_url: str, broker: Broker
) -> None:
    """SIGKILL a real ``orchestrator serve`` while every message's execution is durable but no
    message is acknowledged; after a restart every message is redelivered and recognised: one
    execution per message."""
    from tests.e2e.serverproc import ServerProcess, cli_env

    queue, total = unique("crash"), 6
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    workflow = orders(queue, workflow="crash_orders", prefetch=8)
    (definitions / "crash_orders.json").write_text(json.dumps(workflow))
    database = f"sqlite:///{tmp_path}/crash.db"
    base = cli_env(
        database, {"ORCHESTRATOR_CONNECTION_AMQP": amqp_url, "ORCHESTRATOR_RETENTION_INTERVAL": "0"}
    )
    held = {
        **base,
        "PYTHONPATH": os.pathsep.join([str(HOLD_HOOK), base["PYTHONPATH"]]),
        "ORCHESTRATOR_TEST_HOLD_AFTER_ACCEPT": "600",
    }
    bodies = [json.dumps({"order": i}).encode() for i in range(total)]

    first = ServerProcess(held, ["--definitions", str(definitions)], tmp_path / "first.log")
    try:
        await asyncio.to_thread(first.start)
        await eventually(lambda: _consumed_by(broker, queue, 1), 20, "the server's consumer")
        await publish(amqp_url, queue, bodies, message_id=lambda i: f"crash-{i}")

        async def all_started() -> bool:
            return len(await asyncio.to_thread(server_listing, first.url, "crash_orders")) == total

        await eventually(all_started, 30, "every message's execution")
        # ...and none of them acknowledged (the broker's counters lag by a few seconds).
        await eventually(lambda: _broker_shows(broker, queue, total, 0), 20, "all unacknowledged")
        first.kill()
    finally:
        first.stop()
        print(first.output())

    second = ServerProcess(base, ["--definitions", str(definitions)], tmp_path / "second.log")
    try:
        await asyncio.to_thread(second.start)
        await eventually(lambda: _drained(broker, queue), 30, f"{queue} drained after the restart")
        listing = await asyncio.to_thread(server_listing, second.url, "crash_orders")
        stats = await asyncio.to_thread(trigger_stats, second.url, "crash_orders")
    finally:
        second.stop()
        print(second.output())
    assert len(listing) == total
    assert {item["status"] for item in listing} == {"succeeded"}
    # Every message came back after the crash and was recognised: nothing started twice.
    assert (stats["received"], stats["duplicates"], stats["started"]) == (total, total, 0)
    async with Runtime(Settings(auth=False, event_log_url=database, retention_interval=0)) as runtime:
        got = await inputs(runtime, "crash_orders", total)
        keys = sorted(s.dedup_key or "" for s in await executions(runtime, "crash_orders"))
    assert got == sorted(({"order": i} for i in range(total)), key=json.dumps)
    assert keys == sorted(f"amqp:from_queue:amqp:crash-{i}" for i in range(total))


async def test_the_source_reconnects_after_a_broker_restart(
    runtime: Runtime, broker: Broker, amqp_url: str, monkeypatch: pytest.MonkeyPatch, restore_rabbitmq: None
) -> None:
    """Stop RabbitMQ mid-consumption with deliveries in hand, start it again: the source
    reconnects by itself, resumes consuming, and every message is exactly one execution."""
    queue, before, after, prefetch, let_through = unique("restart"), 40, 10, 4, 10
    original = runtime.start_execution
    calls = 0
    resume = asyncio.Event()

    async def gated_start(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > let_through:
            await resume.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(runtime, "start_execution", gated_start)
    async with consuming(runtime, orders(queue, prefetch=prefetch), retry_delay=0.2) as source:
        bodies = [json.dumps({"order": i}).encode() for i in range(before)]
        await publish(amqp_url, queue, bodies, message_id=lambda i: f"r-{i}")
        await eventually(lambda: _in_hand(source, prefetch), what="deliveries held in hand")
        assert source.stats.started == let_through

        await asyncio.to_thread(services, "stop", "rabbitmq")
        resume.set()  # the held starts become durable, but their acks cannot reach the broker
        await eventually(lambda: _in_hand(source, 0), what="held deliveries finished")
        assert source.stats.started == let_through + prefetch
        await asyncio.to_thread(services, "start", "rabbitmq")

        await publish(
            amqp_url,
            queue,
            [json.dumps({"order": before + i}).encode() for i in range(after)],
            message_id=lambda i: f"r-{before + i}",
        )
        total = before + after
        got = await inputs(runtime, "orders", total, timeout=60)
        await eventually(lambda: _drained(broker, queue), 30, f"{queue} drained")
        consumers = (await asyncio.to_thread(broker.queue, queue))["consumers"]
        stats = source.stats
    assert got == sorted(({"order": i} for i in range(total)), key=json.dumps)
    assert len(await executions(runtime, "orders")) == total
    assert consumers == 1  # the restored consumer, not a second one
    assert stats.started == total
    assert stats.duplicates >= prefetch  # the unacknowledged ones came back and were recognised
    assert stats.dead_lettered == 0


async def _consumed_by(broker: Broker, queue: str, consumers: int) -> bool:
    try:
        info = await asyncio.to_thread(broker.queue, queue)
    except urllib.error.HTTPError:  # not declared yet
        return False
    return bool(info.get("consumers") == consumers)


async def _in_hand(source: AmqpTriggerSource, count: int) -> bool:
    return source.in_flight == count


async def test_dead_letters_are_listed_and_one_moved_back_after_the_fix(
    runtime: Runtime, broker: Broker, amqp_url: str
) -> None:
    """Listing hands every message back; moving one back publishes it to the trigger's queue
    and only then takes it out of the dead queue; the others stay parked."""
    from orchestrator.ports import UnknownDeadLetter
    from triggers.dead_letter_queues import dead_letter_queue

    queue = unique("moveback")
    definition = orders(queue)
    async with consuming(runtime, definition) as source:
        await publish(amqp_url, queue, [b'{"no_order": 1}'], message_id="fixable", headers={"origin": "test"})
        await publish(amqp_url, queue, [b"not json"])  # aio-pika gives it a message_id of its own
        await eventually(lambda: _count(source, 2), what="two messages parked")
        dead = dead_letter_queue(WorkflowDefinition.model_validate(definition).triggers[0], amqp_url)
        assert dead.destination == f"rabbitmq queue {queue}.dead"
        listed = await dead.list(10)
        assert listed[0].id == "fixable" and listed[1].id not in ("", "fixable") and listed[1].value == "not json"
        assert "'order' is a required property" in listed[0].error and listed[0].headers["origin"] == "test"
        assert [letter.id for letter in await dead.list(10)] == [letter.id for letter in listed]  # nothing taken
        with pytest.raises(UnknownDeadLetter):
            await dead.move_back("no-such-letter")
        await runtime.register(WorkflowDefinition.model_validate({**definition, "input_schema": {"type": "object"}}))
        assert await dead.move_back("fixable") == f"rabbitmq queue {queue}"
        assert await inputs(runtime, "orders", 1) == [{"no_order": 1}]
        assert [letter.id for letter in await dead.list(10)] == [listed[1].id]  # the other stays parked
