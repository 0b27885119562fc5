"""``amqp.publish``: publish one persistent message per step attempt, confirmed by the broker.

Step ``config`` (static, in the definition)::

    connection   name of the connection (ORCHESTRATOR_CONNECTION_<NAME>); default "amqp"
    exchange     default "" (the default exchange, which routes by queue name)
    routing_key  default ""; the arguments may override it
    cloudevent   default true: a binary-mode CloudEvent (``cloudEvents_*`` headers), else the bare body
    type         the CloudEvent type; default "io.orchestrator.step.<step>"

Step arguments (from the step's ``input``)::

    body         required, any JSON value; the message body is its JSON encoding
    routing_key  a string, overrides the config's
    headers      {name: string value}

The output is ``{"exchange", "routing_key", "message_id"}``. Messages are persistent
(delivery mode 2) and published with ``mandatory`` on a channel with publisher confirms: a
returned step means the broker routed the message to at least one queue and took
responsibility for it. A step runs at least once, so a message can be published twice; every
attempt of one step visit has the same ``message_id`` and CloudEvent ``id`` (the step's
idempotency key) for consumers to dedupe on.

Errors: ``amqp.config`` (bad config, unknown or malformed connection), ``amqp.bad_request`` (bad
arguments), ``amqp.unroutable`` (no queue is bound for the routing key), ``amqp.not_found`` (no
such exchange), ``amqp.access_refused``, ``amqp.unauthorized`` (login refused),
``amqp.precondition_failed`` (e.g. a message over the broker's size limit): none retryable;
``amqp.unavailable`` (broker unreachable, connection or channel lost), ``amqp.nack`` (the broker
refused to take the message), ``timeout`` (no confirm within the step's timeout, default 30 s),
``amqp.error`` (anything else): retryable.

aio-pika is imported on the first call, so a process that never publishes does not load it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from connectors.base import ConnectorError, StepCall
from connectors.pool import PooledConnector, close_quietly
from connectors.publishing import (
    amqp_problem,
    args_of,
    bad_request,
    cloudevent_attributes,
    common,
    config_error,
    config_of,
    connection_url,
    internal_error,
    json_bytes,
    string_map,
    timeout_of,
)
from connectors.tracing import HEADER, has_header, outbound_traceparent
from orchestrator.tls import amqp_client
from schemas import cloudevents

if TYPE_CHECKING:
    from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

PREFIX = "amqp"
DEFAULT_CONNECTION = "amqp"
CONNECT_TIMEOUT = 10.0
REOPEN_TIMEOUT = 5.0  # for a closed channel to reopen before a publish gives up (amqp.unavailable)
PUBLISH_TRIES = 3
JSON = "application/json"
_EXCHANGE = re.compile(r"^[A-Za-z0-9_.:-]{0,255}$")


@dataclass(frozen=True, slots=True)
class AmqpMessage:
    """One message to publish, checked and encoded (pure: built without a broker)."""

    connection: str
    exchange: str
    routing_key: str
    body: bytes
    content_type: str
    headers: dict[str, Any]
    message_id: str
    type: str | None


@dataclass(frozen=True, slots=True)
class _Client:
    connection: AbstractRobustConnection
    channel: AbstractRobustChannel


class AmqpPublishConnector(PooledConnector["_Client"]):
    """One robust connection and confirming channel per connection name, opened on first use."""

    name = "amqp.publish"

    def step_problems(self, config: Mapping[str, Any]) -> list[str]:
        """Registration: an exchange (or dead-letter queue) internal to the orchestrator."""
        exchange, routing_key = config.get("exchange", ""), config.get("routing_key", "")
        if not isinstance(exchange, str) or not isinstance(routing_key, str):
            return []
        problem = amqp_problem(exchange, routing_key)
        return [] if problem is None else [problem]

    async def invoke(self, call: StepCall) -> dict[str, Any]:
        message = build_message(call)
        where = (
            f"exchange {message.exchange or '(default)'!r}, routing key {message.routing_key!r} "
            f"on connection {message.connection!r}"
        )
        timeout = timeout_of(call)
        try:
            async with asyncio.timeout(timeout):
                await self._publish(message)
        except TimeoutError:
            raise ConnectorError("timeout", f"{where}: not confirmed within {timeout:g}s") from None
        except ConnectorError:
            raise
        except Exception as exc:
            error = amqp_error(exc, where)
            if error is None:
                raise
            raise error from exc
        return {"exchange": message.exchange, "routing_key": message.routing_key, "message_id": message.message_id}

    async def _publish(self, message: AmqpMessage) -> None:
        import aio_pika
        from aiormq.exceptions import ChannelInvalidStateError

        client = await self.pool.get(message.connection)
        channel = client.channel
        for attempt in range(1, PUBLISH_TRIES + 1):
            await _reopened(channel, message.connection)
            if message.exchange:
                exchange = await channel.get_exchange(message.exchange, ensure=False)
            else:
                exchange = channel.default_exchange
            try:
                await exchange.publish(
                    aio_pika.Message(
                        message.body,
                        headers=message.headers,
                        content_type=message.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=message.message_id,
                        timestamp=datetime.now(UTC),
                        type=message.type,
                        app_id="orchestrator",
                    ),
                    message.routing_key,
                    mandatory=True,
                )
                return
            except ChannelInvalidStateError:  # raised before anything was sent: safe to try again
                if attempt == PUBLISH_TRIES:
                    raise

    async def _open(self, connection: str) -> _Client:
        url = connection_url(PREFIX, self._settings, connection)
        if urlsplit(url).scheme not in ("amqp", "amqps"):
            raise config_error(PREFIX, f"connection {connection!r} is not an amqp:// or amqps:// URL")
        import aio_pika

        url, ssl_context = amqp_client(url)  # our ssl_* options become a context (orchestrator/tls.py)
        robust = await aio_pika.connect_robust(
            url,
            ssl_context=ssl_context,
            timeout=CONNECT_TIMEOUT,
            client_properties={"connection_name": f"orchestrator.publish.{connection}"},
        )
        try:
            channel = await robust.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            await close_quietly(robust.close)
            raise
        return _Client(robust, channel)

    async def _close_client(self, client: _Client) -> None:
        await client.connection.close()


async def _reopened(channel: AbstractRobustChannel, connection: str) -> None:
    """Wait for a channel the broker closed (as it does over a missing exchange) to reopen: the
    robust channel reopens itself, shortly after its underlying channel reports closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REOPEN_TIMEOUT
    while channel.is_closed:
        if loop.time() >= deadline:
            raise ConnectorError(
                f"{PREFIX}.unavailable", f"connection {connection!r}: channel closed, not reopened within {REOPEN_TIMEOUT:g}s"
            )
        await asyncio.sleep(0.05)


def build_message(call: StepCall) -> AmqpMessage:
    """Check the step's config and arguments and encode the message; ConnectorError if invalid."""
    config = config_of(PREFIX, call, {"exchange", "routing_key"})
    shared = common(PREFIX, config, DEFAULT_CONNECTION)
    exchange = config.get("exchange", "")
    if not isinstance(exchange, str) or not _EXCHANGE.match(exchange):
        raise config_error(PREFIX, f"'exchange' must be an exchange name ([A-Za-z0-9_.:-]), got {exchange!r}")
    routing_key = config.get("routing_key", "")
    if not _routing_key(routing_key):
        raise config_error(PREFIX, f"'routing_key' must be a string of at most 255 bytes, got {routing_key!r}")
    args = args_of(PREFIX, call, {"routing_key", "headers"}, "body")
    if args.get("routing_key") is not None:
        routing_key = args["routing_key"]
        if not _routing_key(routing_key):
            raise bad_request(PREFIX, f"'routing_key' must be a string of at most 255 bytes, got {routing_key!r}")
    if (problem := amqp_problem(exchange, routing_key)) is not None:
        raise internal_error(PREFIX, problem)
    extra: dict[str, Any] = string_map(PREFIX, args.get("headers"), "headers")
    body = json_bytes(PREFIX, args["body"], "body")
    content_type, headers = JSON, dict(extra)
    if shared.cloudevent:
        reserved = [n for n in extra if n.lower().startswith(cloudevents.AMQP_PREFIXES)]
        if reserved:
            raise bad_request(PREFIX, f"headers {reserved} are set by the CloudEvent; use cloudevent: false")
        attributes = {**cloudevent_attributes(call, shared.type), "datacontenttype": JSON}
        try:
            body, ce_headers, content_type = cloudevents.to_amqp(attributes, body)
        except ValueError as exc:
            raise config_error(PREFIX, f"cannot build the CloudEvent: {exc}") from None
        headers.update(ce_headers)
    trace = outbound_traceparent(call)
    if trace is not None and not has_header(extra):
        headers[HEADER] = trace
    return AmqpMessage(
        connection=shared.connection,
        exchange=exchange,
        routing_key=routing_key,
        body=body,
        content_type=content_type,
        headers=headers,
        message_id=call.idempotency_key,
        type=(shared.type or f"io.orchestrator.step.{call.step}") if shared.cloudevent else None,
    )


def _routing_key(value: Any) -> bool:
    return isinstance(value, str) and len(value.encode()) <= 255


def amqp_error(exc: BaseException, where: str) -> ConnectorError | None:
    """The step error for an aio-pika/aiormq (or socket) exception; None for anything else."""
    from aiormq import exceptions as amqp

    detail = f"{where}: {exc}" if isinstance(exc, amqp.DeliveryError) else f"{where}: {exc!r}"

    def error(kind: str, retryable: bool) -> ConnectorError:
        return ConnectorError(f"{PREFIX}.{kind}", detail, retryable=retryable)

    if isinstance(exc, amqp.PublishError):  # Basic.Return: mandatory and no queue matched
        return error("unroutable", False)
    if isinstance(exc, amqp.DeliveryError):  # Basic.Nack / Basic.Reject
        return error("nack", True)
    if isinstance(exc, amqp.ChannelNotFoundEntity):
        return error("not_found", False)
    if isinstance(exc, amqp.ChannelAccessRefused):
        return error("access_refused", False)
    if isinstance(exc, amqp.ChannelPreconditionFailed):
        return error("precondition_failed", False)
    if isinstance(exc, amqp.AuthenticationError) or (
        isinstance(exc, amqp.ProbableAuthenticationError) and "ACCESS_REFUSED" in str(exc)
    ):
        return error("unauthorized", False)
    if isinstance(exc, amqp.AMQPConnectionError | amqp.ChannelClosed | amqp.ChannelInvalidStateError | OSError):
        return error("unavailable", True)
    if isinstance(exc, amqp.AMQPError):
        return error("error", True)
    return None
