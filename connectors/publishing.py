"""What the publishing connectors share: step config and args checks, connection URLs, CloudEvents.

Each connector names its errors with its own prefix (``kafka.``, ``amqp.``): ``<prefix>.config``
for a definition's static ``config`` or its connection (not retryable: a retry cannot fix it),
``<prefix>.bad_request`` for the arguments an attempt was given (not retryable either).

Neither may write where the orchestrator keeps its own messages (``<prefix>.internal``, refused
at registration for a literal name and at every attempt): Kafka topics named ``orchestrator.*``
(commands, tasks, their dead letters, the transition stream, window triggers' topics), ``__*``
(Kafka's own) and whatever the transport URL renames them to; RabbitMQ exchanges ``amq.*`` (the
broker's) and ``*.dlx`` (triggers' dead-letter exchanges), and the queues ``*.dead`` behind them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.base import ConnectorError, StepCall
from orchestrator.settings import Settings, SettingsError

DEFAULT_TIMEOUT_SECONDS = 30.0
SOURCE_PREFIX = "/orchestrator/"
TYPE_PREFIX = "io.orchestrator.step."


@dataclass(frozen=True, slots=True)
class Common:
    """The config every publishing step has."""

    connection: str
    cloudevent: bool
    type: str | None  # the CloudEvent type; None: ``io.orchestrator.step.<step>``


def config_error(prefix: str, message: str) -> ConnectorError:
    return ConnectorError(f"{prefix}.config", message, retryable=False)


def bad_request(prefix: str, message: str) -> ConnectorError:
    return ConnectorError(f"{prefix}.bad_request", message, retryable=False)


INTERNAL_TOPIC_PREFIXES = ("orchestrator.", "__")


def internal_error(prefix: str, message: str) -> ConnectorError:
    return ConnectorError(f"{prefix}.internal", message, retryable=False)


def internal_topics(settings: Settings | None) -> frozenset[str]:
    """The configured transport's and transition stream's topic names (beyond the prefixes)."""
    if settings is None:
        return frozenset()
    names: set[str] = set()
    if settings.transport_url.startswith("kafka:"):
        from orchestrator.backends.kafka.client import KafkaOptions

        try:
            options = KafkaOptions.from_url(settings.transport_url)
        except ValueError:
            return frozenset()
        names |= {options.commands, options.tasks, options.dead_letters or f"{options.commands}.dead"}
    if settings.transitions_url:
        from urllib.parse import parse_qs, urlsplit

        names.update(parse_qs(urlsplit(settings.transitions_url).query).get("topic", []))
    return frozenset(names)


def topic_problem(topic: str, reserved: frozenset[str]) -> str | None:
    if topic.startswith(INTERNAL_TOPIC_PREFIXES) or topic in reserved:
        return f"topic {topic!r} is internal to the orchestrator (or to Kafka): steps may not publish to it"
    return None


def amqp_problem(exchange: str, routing_key: str) -> str | None:
    if exchange.startswith("amq.") or exchange.endswith(".dlx"):
        return f"exchange {exchange!r} is internal (the broker's, or a trigger's dead letters): steps may not publish to it"
    if not exchange and routing_key.endswith(".dead"):
        return f"queue {routing_key!r} holds a trigger's dead letters: steps may not publish to it"
    return None


def config_of(prefix: str, call: StepCall, allowed: set[str]) -> Mapping[str, Any]:
    """The step's static config, checked for unknown keys (a typo must not pass silently)."""
    config = call.config
    if not isinstance(config, Mapping):
        raise config_error(prefix, f"config must be an object, got {type(config).__name__}")
    _known(config, allowed | {"connection", "cloudevent", "type"}, lambda m: config_error(prefix, m), "config")
    return config


def args_of(prefix: str, call: StepCall, allowed: set[str], required: str) -> Mapping[str, Any]:
    """The attempt's arguments: an object with ``required`` and only ``allowed`` keys."""
    args = call.args
    if not isinstance(args, Mapping):
        raise bad_request(prefix, f"arguments must be an object with {required!r}, got {type(args).__name__}")
    _known(args, allowed | {required}, lambda m: bad_request(prefix, m), "arguments")
    if required not in args:
        raise bad_request(prefix, f"argument {required!r} is required")
    return args


def common(prefix: str, config: Mapping[str, Any], default_connection: str) -> Common:
    connection = config.get("connection", default_connection)
    if not isinstance(connection, str) or not connection:
        raise config_error(prefix, f"'connection' must be a connection name, got {connection!r}")
    cloudevent = config.get("cloudevent", True)
    if not isinstance(cloudevent, bool):
        raise config_error(prefix, f"'cloudevent' must be true or false, got {cloudevent!r}")
    kind = config.get("type")
    if kind is not None and (not isinstance(kind, str) or not kind):
        raise config_error(prefix, f"'type' must be a non-empty string, got {kind!r}")
    return Common(connection, cloudevent, kind)


def connection_url(prefix: str, settings: Settings | None, name: str) -> str:
    """The URL of a named connection. Never put it in a message: it may hold credentials."""
    try:
        return (settings or Settings.from_env()).connection(name)
    except SettingsError as exc:
        raise config_error(prefix, str(exc)) from None


def string_map(prefix: str, value: Any, what: str) -> dict[str, str]:
    """``{str: str}`` or None (empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise bad_request(prefix, f"{what!r} must be an object of string names to string values")
    return dict(value)


def json_bytes(prefix: str, value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise bad_request(prefix, f"{what!r} is not JSON-serialisable: {exc}") from None


def cloudevent_attributes(call: StepCall, kind: str | None) -> dict[str, Any]:
    """The CloudEvent a step publishes. ``id`` is the step's idempotency key, the same for every
    attempt of one step visit, so consumers dedupe a retried publish by ``source`` + ``id``."""
    return {
        "id": call.idempotency_key,
        "source": SOURCE_PREFIX + call.workflow,
        "type": kind or TYPE_PREFIX + call.step,
        "subject": call.execution_id,
        "time": datetime.now(UTC),
    }


def timeout_of(call: StepCall) -> float:
    return call.timeout_seconds or DEFAULT_TIMEOUT_SECONDS


def _known(
    mapping: Mapping[str, Any], allowed: set[str], error: Callable[[str], ConnectorError], what: str
) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise error(f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(sorted(allowed))}")
