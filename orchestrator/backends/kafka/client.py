"""Kafka plumbing shared by the transport, the Kafka and windowed triggers, the ``kafka.publish``
connector and the transition stream: ``kafka://`` URL options, topic creation, the idempotent
producer they all use, starting and stopping aiokafka clients through an outage, and consumer
lag reports (``LagReporter``: highwater - position per assigned partition, about once a second).

``kafka://host:port[,host2:port]?name=value&...``: a host without a port gets 9092; each query
option names a field of the options dataclass it is read into (``KafkaOptions`` for connections,
the transition stream has its own) and unknown or malformed options are refused. The TLS and
SASL options (``security_protocol``, ``sasl_*``, ``ssl_*``: ``kafka/security.py``) become the
``security`` field; every client built here takes its arguments. Errors show the URL redacted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    IllegalStateError,
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from orchestrator.backends.kafka.security import PARAMETERS as SECURITY_PARAMETERS
from orchestrator.backends.kafka.security import PLAINTEXT, KafkaSecurity
from orchestrator.instrumentation import Instruments
from orchestrator.tls import redact_url

__all__ = [
    "PLAINTEXT",
    "PRODUCER_STATE_LOST",
    "STOP_TIMEOUT",
    "KafkaOptions",
    "KafkaSecurity",
    "LagReporter",
    "describe",
    "ensure_topics",
    "idempotent_producer",
    "keep_trying",
    "options_from_url",
    "partition_lag",
    "stop_client",
]

log = logging.getLogger(__name__)
TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS
STOP_TIMEOUT = 10.0  # a client that cannot say goodbye to the brokers within this is abandoned
MAX_REQUEST_TIMEOUT = 30.0  # seconds a produce request may take (the send timeout if lower)
# The producer lost its idempotence state (aiokafka does not reset the producer id by itself):
# only a new producer sends again.
POSITION_TIMEOUT = 0.05  # a position being reset (after a seek or assignment) is skipped, not awaited
PRODUCER_STATE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """Everything ``kafka://`` connection URLs configure (the transport's URL and the named
    connections of triggers and connectors); ``from_url`` rejects unknown or malformed options."""

    bootstrap: tuple[str, ...]
    commands: str = "orchestrator.commands"
    tasks: str = "orchestrator.tasks"
    partitions: int = 12
    replication: int = 1
    group: str = "orchestrator-workers"
    role: Literal["all", "api"] = "all"
    concurrency: int = 64  # tasks running at once in this process
    command_concurrency: int = 16  # executions of one partition handled at once; 1 = partition order
    fair: bool = True  # step tasks: a weighted fair queue across tenants; False: fetch order
    read_ahead: int = 10_000  # fair: task records a partition is read past its commit point
    parked_bytes: int = 16 << 20  # fair: bytes of deferred task records kept in memory (kafka/parked.py)
    linger_ms: int = 0  # measured: 1 ms adds ~1.4 ms per produce in aiokafka and no throughput
    send_timeout: float = 30.0  # give up on an unacknowledged submit/dispatch after this
    start_timeout: float = 10.0  # BackendUnavailable if the brokers do not answer within this
    grace: float = 5.0  # on stop or revoke, running records get this long to finish
    dead_letters: str = ""  # the commands dead-letter topic; empty: ``<commands>.dead``
    security: KafkaSecurity = PLAINTEXT  # TLS and SASL (kafka/security.py)

    @classmethod
    def from_url(cls, url: str, defaults: dict[str, Any] | None = None) -> KafkaOptions:
        """The options of ``url``; ``defaults`` (field -> value) apply where the URL is silent."""
        options = options_from_url(cls, url, defaults)
        if options.role not in ("all", "api"):
            raise ValueError(f"role must be all or api, not {options.role!r}")
        least = (options.partitions, options.replication, options.concurrency, options.command_concurrency)
        if options.parked_bytes < 0:
            raise ValueError(f"parked_bytes must be >= 0 in {redact_url(url)!r}")
        if min(*least, options.read_ahead) < 1:
            raise ValueError(
                f"partitions, replication, read_ahead and concurrencies must be >= 1 in {redact_url(url)!r}"
            )
        return options


Options = TypeVar("Options")


def _boolean(raw: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise ValueError(raw)
    return raw.lower() == "true"


CONVERSIONS: dict[str, tuple[Callable[[str], Any], str]] = {
    "int": (int, "an int"),
    "float": (float, "a float"),
    "bool": (_boolean, "true or false"),
}


def options_from_url(cls: type[Options], url: str, defaults: dict[str, Any] | None = None) -> Options:
    """``cls(bootstrap=hosts, **defaults, **query options)`` from ``kafka://host:port[,host:port]?name=value``.

    ``cls`` is a dataclass with ``bootstrap`` and ``security`` fields; each other query option must
    name one of its other fields and is converted to that field's type (int, float, bool: true or
    false, or str)."""
    parts = urlsplit(url)
    shown = redact_url(url)
    hosts = tuple(h if ":" in h else f"{h}:9092" for h in parts.netloc.split(",") if h)
    if parts.scheme != "kafka" or not hosts:
        raise ValueError(f"not a kafka://host:port URL: {shown!r}")
    known = {f.name: f for f in fields(cls) if f.name not in ("bootstrap", "security")}  # type: ignore[arg-type]
    values: dict[str, Any] = dict(defaults or {})
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    security = {name: raw for name, raw in pairs if name in SECURITY_PARAMETERS}
    values["security"] = KafkaSecurity.take(security, shown)
    for name, raw in pairs:
        if name in SECURITY_PARAMETERS:
            continue
        option = known.get(name)
        if option is None:
            known_names = ", ".join(sorted((*known, *SECURITY_PARAMETERS)))
            raise ValueError(f"unknown option {name!r} in {shown!r}; known: {known_names}")
        kind, what = CONVERSIONS.get(str(option.type), (str, "str"))
        try:
            values[name] = kind(raw)
        except ValueError:
            raise ValueError(f"option {name}={raw!r} in {shown!r} is not {what}") from None
    return cls(bootstrap=hosts, **values)  # type: ignore[call-arg]


def idempotent_producer(
    bootstrap: Iterable[str],
    client_id: str,
    *,
    linger_ms: int,
    send_timeout: float,
    security: KafkaSecurity = PLAINTEXT,
) -> AIOKafkaProducer:
    """An unstarted producer whose sends return once every in-sync replica has the record
    (``acks=all``, idempotent); one request may take ``send_timeout`` (at most 30 s)."""
    return AIOKafkaProducer(
        bootstrap_servers=list(bootstrap),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=linger_ms,
        request_timeout_ms=int(min(send_timeout, MAX_REQUEST_TIMEOUT) * 1000),
        **security.client_args(),
    )


async def ensure_topics(
    bootstrap: Iterable[str],
    names: Iterable[str],
    partitions: int,
    replication: int,
    failures: list[Exception] | None = None,
    connected: Callable[[], None] = lambda: None,
    security: KafkaSecurity = PLAINTEXT,
) -> list[dict[str, Any]]:
    """Create the topics that do not exist and wait until every partition has a leader (a consumer
    that joins before that is assigned nothing); their descriptions. The caller's timeout bounds
    it; with ``failures``, connection failures are retried (and recorded) until then. ``connected``
    is called once the brokers answered (callers name the stage an error happened in)."""
    wanted = list(dict.fromkeys(names))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=list(bootstrap), request_timeout_ms=5000, **security.client_args()
    )
    if failures is None:
        await admin.start()
    else:
        await keep_trying(admin.start, failures)
    connected()
    try:
        response = await admin.create_topics([NewTopic(n, partitions, replication) for n in wanted])
        for topic, code, message in (error[:3] for error in response.topic_errors):
            if code not in (0, TOPIC_EXISTS):
                raise KafkaError(f"creating topic {topic} failed with error {code}: {message}")
        while True:
            described: list[dict[str, Any]] = await admin.describe_topics(wanted)
            if all(_ready(topic) for topic in described):
                return described
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def keep_trying(start: Callable[[], Awaitable[None]], failures: list[Exception]) -> None:
    """``start()`` until it succeeds (brokers may still be starting); the caller's timeout ends it.
    Each failure is appended to ``failures`` (for the error message when the timeout comes)."""
    delay = 0.2
    while True:
        try:
            await start()
            return
        except (KafkaError, OSError) as exc:
            failures.append(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def stop_client(what: str, stop: Callable[[], Awaitable[None]], timeout: float) -> bool:
    """Run an aiokafka client's flush/stop so that an outage makes it neither fail nor hang our
    stop; False (and a warning naming ``what``) when it did not finish cleanly."""
    try:
        async with asyncio.timeout(timeout):
            await stop()
        return True
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("%s did not finish cleanly: %s", what, describe(exc))
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled ourselves
        log.warning("%s did not finish cleanly: an internal task of the client was cancelled", what)
    return False


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for logs and errors (aiokafka's messages often lack the type)."""
    text = str(exc) or "no detail"
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


def _ready(topic: dict[str, Any]) -> bool:
    partitions = topic.get("partitions") or []
    return topic.get("error_code") == 0 and bool(partitions) and all(p["leader"] >= 0 for p in partitions)


class LagReporter:
    """Consumer lag of one group, reported at most once per ``interval`` seconds.

    Kafka consumers (the transport's groups, the topic triggers) call ``report`` from their fetch
    loop after each fetch; each assigned partition whose high watermark the consumer knows (it
    learns it from a fetch response) goes to ``instruments.consumer_lag(group, topic, partition,
    lag)``."""

    def __init__(self, group: str, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.group = group
        self.interval = interval
        self._clock = clock
        self._next = 0.0
        self.last: dict[tuple[str, int], int] = {}  # (topic, partition) -> the lag last reported

    async def report(self, consumer: Any, partitions: Iterable[TopicPartition], instruments: Instruments) -> bool:
        """Report the lag of each of ``partitions`` (assigned to ``consumer``) if one is due;
        True when it was (the caller may report what it keeps per partition at the same pace)."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.interval
        assigned = list(partitions)
        self.last = {k: v for k, v in self.last.items() if TopicPartition(*k) in assigned}
        for tp in assigned:
            lag = await partition_lag(consumer, tp)
            if lag is not None:
                self.last[(tp.topic, tp.partition)] = lag
                instruments.consumer_lag(self.group, tp.topic, tp.partition, lag)
        return True


async def partition_lag(consumer: Any, tp: TopicPartition) -> int | None:
    """``highwater - position``, or None while either is unknown (or the partition is not assigned).

    Never raises: lag is an observation, and the caller is a fetch loop that must keep going."""
    try:
        highwater = consumer.highwater(tp)
        if highwater is None:
            return None
        async with asyncio.timeout(POSITION_TIMEOUT):
            position: int = await consumer.position(tp)
    except (IllegalStateError, AssertionError, TimeoutError):  # revoked meanwhile, or being reset
        return None
    except Exception as exc:  # e.g. a coordinator error the next fetch reports anyway
        log.debug("lag of %s/%d unknown: %r", tp.topic, tp.partition, exc)
        return None
    return max(int(highwater) - position, 0)
