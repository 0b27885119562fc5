"""Ports: the small interfaces the engine drives. One module per backend implements each."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from orchestrator.core.commands import Command
from schemas.definition import WorkflowDefinition
from schemas.envelope import Envelope


class ConcurrencyError(Exception):
    """Another writer appended first: the expected sequence is no longer the last one."""

    def __init__(self, execution_id: str, expected: int) -> None:
        super().__init__(f"execution {execution_id}: sequence {expected} is not the last one")
        self.execution_id = execution_id
        self.expected = expected


class UnknownWorkflow(LookupError):
    """No definition with that name (and version) in the caller's tenant."""


class VersionConflict(ValueError):
    """That name and version is registered with different content; versions are immutable."""


class HookTaken(ValueError):
    """A webhook name that the latest version of another workflow declares (409 ``hook_taken``)."""


class NameTaken(ValueError):
    """A workflow name that another tenant owns (409 ``workflow_name_taken``)."""


class BackendUnavailable(ConnectionError):
    """A backend cannot be reached; the message names the URL and what failed."""


class Overloaded(BackendUnavailable):
    """This process holds as much work as it may (backpressure): try again after ``retry_after``
    seconds. HTTP answers 429 with ``Retry-After``; queue triggers leave the message unacknowledged
    and try again, as for any backend that is unavailable."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnknownExecution(LookupError):
    """No execution with that id in the caller's tenant (another tenant's is not found either)."""


class UnknownTrigger(LookupError):
    """The workflow's latest version declares no trigger of that name."""


class NoDeadLetters(LookupError):
    """The trigger parks nothing (a webhook answers its caller; a schedule records a failed fire)."""


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """One row of the executions index, kept by the event log beside the events."""

    execution_id: str
    workflow: str
    version: int
    tenant: str
    status: str
    started_at: str
    updated_at: str
    last_sequence: int
    parent_id: str | None = None
    started_by: str | None = None  # the start's actor: a trigger, a hook, a principal, a parent
    correlation_key: str | None = None  # the key of its latest ``wait_for_event``, if any

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class ExecutionQuery:
    """Filters for listing executions, newest first. Times are RFC 3339 strings."""

    workflow: str | None = None
    status: str | None = None
    started_after: str | None = None
    started_before: str | None = None
    tenant: str | None = None
    limit: int = 100
    cursor: str | None = None
    version: int | None = None  # with or without ``workflow``: of the definition's version
    started_by: str | None = None  # e.g. ``trigger:orders/paid``, ``webhook:github``
    correlation_key: str | None = None


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    items: list[ExecutionSummary]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A materialised state after event ``sequence``, stored beside the events it was folded from.

    ``body`` is opaque to the backend (``orchestrator.engine.snapshots`` encodes and decodes it).
    Snapshots are derived data: losing one costs a longer fold, never correctness.
    """

    execution_id: str
    sequence: int
    body: bytes
    tenant: str = "default"  # whose data key seals the body when encryption is on


@dataclass(frozen=True, slots=True)
class Link:
    """A relation from one execution to another, e.g. ``redrive_of`` / ``redriven_as``."""

    execution_id: str
    other_id: str
    relation: str
    created_at: str  # RFC 3339


class EventLog(Protocol):
    """Append-only per-execution event streams with optimistic concurrency."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def append(self, execution_id: str, expected_sequence: int, events: Sequence[Envelope]) -> None:
        """Append events numbered expected_sequence+1...; ConcurrencyError if not the last."""

    async def read(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[Envelope]:
        """Events with sequence > after_sequence, in order (at most ``limit``)."""

    async def summary(self, execution_id: str) -> ExecutionSummary | None: ...

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage: ...

    def execution_ids(self) -> AsyncIterator[str]:
        """Every execution that has events, in no particular order (export, integrity checks).

        A full scan: for maintenance commands, never for the request path.
        """

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot; saving the same (execution, sequence) again replaces it."""

    async def load_snapshot(self, execution_id: str, at_most: int | None = None) -> Snapshot | None:
        """The latest snapshot with sequence <= ``at_most`` (any when None); None if there is none."""

    async def delete_execution(self, execution_id: str) -> bool:
        """Remove an execution: events, summary, listing rows, snapshots and its links.

        False when it did not exist. Used by retention; never by the engine.
        """

    async def add_link(self, link: Link) -> None:
        """Record a link under ``link.execution_id`` (idempotent)."""

    async def links(self, execution_id: str) -> list[Link]:
        """Links recorded under this execution, oldest first."""


@dataclass(frozen=True, slots=True)
class DataKeyRecord:
    """A tenant's data key under master key ``key_id``, wrapped (sealed) by that master key."""

    tenant: str
    key_id: str
    wrapped: bytes
    created_at: str  # RFC 3339


@runtime_checkable
class DataKeyStore(Protocol):
    """Wrapped data keys, kept beside the events so every process finds the same ones."""

    async def insert_data_key(self, record: DataKeyRecord) -> DataKeyRecord:
        """Store ``record`` unless (tenant, key_id) has one already; the stored one either way,
        so concurrent creators converge on one key (a conditional insert)."""

    async def data_keys(self, tenant: str | None = None) -> list[DataKeyRecord]:
        """The stored records (of one tenant, or all)."""

    async def delete_data_keys(self, key_id: str) -> int:
        """Forget every data key wrapped by ``key_id`` (retiring it); how many."""


StoredTransform = Callable[[str, int, bytes], Awaitable[bytes | None]]  # (kind, sequence, stored)


class EventCodec(Protocol):
    """How an event log turns envelopes and snapshot bodies into stored bytes and back
    (``orchestrator.crypto``): identity, or AES-256-GCM under per-tenant data keys."""

    encrypts: bool

    async def encode(self, events: Sequence[Envelope]) -> list[bytes]: ...

    async def decode(self, stored: Sequence[bytes]) -> list[Envelope]: ...

    async def seal_snapshot(self, snapshot: Snapshot) -> bytes: ...

    async def open_snapshot(self, snapshot: Snapshot) -> Snapshot | None:
        """The plaintext snapshot; None when it cannot be opened (the loader folds the events)."""


class RecordSealer(Protocol):
    """Bytes -> bytes on the transport's records (``kind``: ``command`` or ``task``); ``open``
    raises ValueError for a record that does not verify."""

    encrypts: bool

    def seal(self, value: bytes, kind: str) -> bytes: ...

    def open(self, value: bytes, kind: str) -> bytes: ...


@runtime_checkable
class RewritesStored(Protocol):
    """An event log whose stored bytes a maintenance job may rewrite in place (re-encryption)."""

    async def rewrite_stored(self, execution_id: str, transform: StoredTransform) -> int:
        """Pass each stored event (``kind`` ``event``) and snapshot (``snapshot``) of the execution
        to ``transform``; store what it returns instead, unless the row changed meanwhile (None:
        keep). How many rows were rewritten."""


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Events after a position, in commit order, and the position to resume from.

    ``items`` are (position, envelope) pairs with non-decreasing positions. Several events may
    share a position (in Cassandra, the events of one append); a page never ends inside such a
    group. Every event committed at or before ``last`` has been returned by now: pass it to the
    next ``read_after``. ``last`` may lie beyond the last item (the feed is complete up to there).
    """

    items: list[tuple[int, Envelope]]
    last: int


class EventFeed(Protocol):
    """Every committed event of every execution, in commit order, with a resumable position.

    Positions are ordered ints, otherwise opaque (a counter in SQLite and memory, microseconds in
    Cassandra); 0 lies before every event. A reader that passes each page's ``last`` to the next
    call never misses a committed event, however many writers commit concurrently. Events of
    deleted executions (retention) are absent. ``delay``: seconds after its commit before an
    event is served (0: at once). Details per backend: docs/feed.md.
    """

    delay: float

    async def read_after(self, position: int, limit: int = 1000) -> FeedPage:
        """Events with a position after ``position``, oldest first: at most ``limit`` of them,
        unless the last group sharing a position goes over."""

    async def head(self) -> int:
        """A position at or after every event committed so far: a reader there is caught up."""


class Checkpoints(Protocol):
    """Where each projection stands in the feed, by projection name."""

    async def load(self, name: str) -> int:
        """The last saved position; 0 when none was saved."""

    async def save(self, name: str, position: int) -> None:
        """Store the position (the last save wins)."""


@runtime_checkable
class FeedSource(Protocol):
    """An event log that serves the global feed of its events and stores checkpoints beside them."""

    def feed(self) -> EventFeed: ...

    def checkpoints(self) -> Checkpoints: ...


class Registry(Protocol):
    """Workflow definitions by (name, version). Versions are immutable. A name belongs to the
    tenant of its first version: registering it for another tenant raises NameTaken."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def register(self, definition: WorkflowDefinition) -> WorkflowDefinition:
        """Store a definition; assign the next version if it has none. Same content: no-op."""

    async def get(self, name: str, version: int | None = None) -> WorkflowDefinition:
        """A version (latest when None); UnknownWorkflow if missing."""

    async def list(self) -> builtins.list[WorkflowDefinition]:
        """The latest version of every workflow."""

    async def versions(self, name: str) -> builtins.list[int]: ...

    async def trigger_states(self) -> dict[tuple[str, str], bool]:
        """Operator overrides of ``enabled``: (workflow, trigger) -> enabled, for every version."""

    async def set_trigger_enabled(self, workflow: str, trigger: str, enabled: bool) -> None:
        """Override the definition's ``enabled`` flag of one trigger (the last call wins)."""


@dataclass(frozen=True, slots=True)
class StepTask:
    """A unit of work for a worker: run one attempt of a task step, for the execution's
    ``tenant`` and on behalf of ``actor`` (who started it; None when that is not known).
    ``config`` and ``args`` hold secret references, never values: the worker resolves those in
    ``config`` and, in ``args``, only at the ``secret_args`` paths (``schemas.secrets``)."""

    execution_id: str
    workflow: str
    step: str
    attempt: int
    attempt_id: str
    connector: str
    config: dict[str, Any]
    args: Any
    idempotency_key: str
    timeout_seconds: float | None = None
    tenant: str = "default"
    actor: str | None = None
    scheduled_at: float | None = None  # when the commit that scheduled it was decided (metrics)
    traceparent: str | None = None  # the execution's W3C trace context, if it was started with one
    secret_args: list[list[str | int]] = field(default_factory=list)


class Shards(Protocol):
    """How executions map to the transport's partitions, and which ones this process owns."""

    def shard_of(self, execution_id: str) -> int: ...

    def owned_shards(self) -> set[int] | None:
        """The shards this process owns now; None means all of them (a single process)."""


@runtime_checkable
class FairScheduling(Protocol):
    """A transport that schedules step tasks fairly across tenants, by weight."""

    def set_tenant_weights(self, weights: Mapping[str, float]) -> None: ...


CommandHandler = Callable[[Command], Awaitable[None]]
TaskHandler = Callable[[StepTask], Awaitable[None]]


class Transport(Shards, Protocol):
    """Moves commands to the engine (ordered per execution) and tasks to workers.

    ``durable``: commands and tasks in flight survive a crash of this process, so nothing has to
    be re-derived from the log at start (Kafka); otherwise the runtime resumes every running
    execution from the log when it starts (in-process).
    """

    durable: bool

    async def start(self, on_command: CommandHandler, on_task: TaskHandler) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, command: Command) -> None:
        """Deliver a command to whoever owns its execution."""

    async def dispatch(self, task: StepTask) -> None:
        """Hand a task to a worker."""


class ConnectorError(Exception):
    """A step failure with a type that retry policies match (e.g. ``http.503``, ``timeout``)."""

    def __init__(self, type_: str, message: str = "", *, retryable: bool = True) -> None:
        super().__init__(f"{type_}: {message}" if message else type_)
        self.type = type_
        self.message = message
        self.retryable = retryable


@dataclass(slots=True)
class StepUsage:
    """What an attempt used, as far as its connector can tell (an isolated process can): filled
    in by the connector, read by the worker onto the outcome event."""

    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class StepCall:
    """What a connector receives for one attempt: ``tenant`` is the execution's, ``actor`` who
    started it (None when not known); per-tenant keys, quotas and audit read them. ``usage``:
    where a connector that measures resources writes them (None: nobody reads them)."""

    execution_id: str
    workflow: str
    step: str
    attempt: int
    idempotency_key: str
    config: dict[str, Any] = field(default_factory=dict)
    args: Any = None
    timeout_seconds: float | None = None
    tenant: str = "default"
    actor: str | None = None
    usage: StepUsage | None = field(default=None, compare=False)
    traceparent: str | None = None  # the execution's W3C trace context: outbound calls carry it on


class Connector(Protocol):
    """Runs one attempt of a task step (``connectors/``): opened and closed with the service;
    ``invoke`` returns JSON-compatible output or raises ``ConnectorError``. A step runs at least
    once, so ``call.idempotency_key`` is the same for every attempt of one step visit."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def invoke(self, call: StepCall) -> Any: ...


@runtime_checkable
class ChecksSteps(Protocol):
    """A connector that can refuse a task step's static config at registration (a python
    function outside the allow-list, an internal topic, a refused address)."""

    def step_problems(self, config: Mapping[str, Any]) -> list[str]:
        """What is wrong with ``config``, one message each; empty when nothing is."""
        ...


class ConnectorLookup(Protocol):
    """The connectors of a process by name (``connectors.base.Connectors``)."""

    def get(self, name: str) -> Connector:
        """The connector; ``ConnectorError("connector.unknown", retryable=False)`` if none has that name."""
        ...


TimerCallback = Callable[[str, str], Awaitable[None]]


class Timers(Protocol):
    """Durable timers as a projection of TimerScheduled events: fire ``on_due(execution, timer)``.

    Timers of one shard fire in the process that owns the shard; firing twice is harmless (the
    machine ignores a timer that is no longer armed), losing one is not.
    """

    async def start(self, on_due: TimerCallback, shards: Shards) -> None: ...

    async def stop(self) -> None: ...

    async def schedule(self, execution_id: str, timer_id: str, due: float) -> None: ...

    async def cancel(self, execution_id: str, timer_id: str) -> None: ...


WaitKey = tuple[str, str | None]  # (event name, correlation key)


class WaitIndex(Protocol):
    """Executions waiting for an event by (name, correlation key): a projection of EventAwaited."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def update(self, execution_id: str, removed: set[WaitKey], added: set[WaitKey]) -> None: ...

    async def waiting(self, key: WaitKey) -> builtins.list[str]: ...


ResumeCallback = Callable[[str], Awaitable[None]]


@runtime_checkable
class IdleIndex(Protocol):
    """Running executions that have not moved for a while, by shard: what the recovery sweep
    (``orchestrator.engine.recovery``) resumes. Implemented by an event log that keeps such an
    index as a projection of its events (Cassandra); others are scanned through their listing."""

    shards: Shards | None  # set by the runtime: the shard each execution is indexed under

    async def sweep_idle(self, shard: int, now: float, grace: float, resume: ResumeCallback) -> int:
        """Await ``resume(execution_id)`` for each running execution of ``shard`` whose last event
        is ``grace`` seconds older than ``now`` and that was not resumed at that sequence before;
        how many. A failing ``resume`` propagates, and what was not resumed comes back next time."""


class UnknownDeadLetter(LookupError):
    """No parked command (or trigger dead letter) with that id."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A command parked after failing for a reason retrying does not cure (``orchestrator.engine.parking``)."""

    id: str  # its position in the dead-letter store, oldest first
    execution_id: str
    command_type: str  # e.g. ``CompleteStep``; empty when the record could not be decoded
    command_id: str | None
    error_type: str  # the exception's class, e.g. ``UnknownWorkflow`` or ``CodecError``
    error_message: str
    attempts: int
    parked_at: str  # RFC 3339
    origin: str = ""  # where it was read from (a Kafka ``topic/partition/offset``), if known
    tenant: str = "default"  # the command's tenant: listings and redrives stay within it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    items: list[DeadLetter]
    next_cursor: str | None


class DeadLetters(Protocol):
    """Where poison commands are parked, listed and redriven (memory in-process; a Kafka topic)."""

    async def park(self, command: Command, error: BaseException, attempts: int, tenant: str = "default") -> DeadLetter:
        """Store a command of ``tenant`` that failed ``attempts`` times; returns once it is durable."""

    async def list(self, limit: int = 100, cursor: str | None = None, tenant: str | None = None) -> DeadLetterPage:
        """Parked commands (of ``tenant``; None: all), oldest first, from ``cursor`` (a ``next_cursor``)."""

    async def redrive(self, letter_id: str, tenant: str | None = None) -> DeadLetter:
        """Submit the parked command again (it stays listed); UnknownDeadLetter, also for another tenant's."""


@runtime_checkable
class ParksCommands(Protocol):
    """A transport with a dead-letter store of its own (Kafka: a topic beside the commands)."""

    dead_letters: DeadLetters


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One process as it last described itself (its heartbeat). Times are Unix seconds.

    ``shards``: the commands partitions it owns (None: all of them, a single process; empty: none,
    e.g. an API-only process). ``lag``: consumer lag by ``topic/partition`` where it consumes.
    ``config``: its effective configuration with every secret redacted.
    """

    node_id: str
    role: str
    version: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    interval: float  # seconds between heartbeats it promised
    shards: tuple[int, ...] | None = None
    in_flight: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    stopped: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "role": self.role,
            "version": self.version,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "interval": self.interval,
            "shards": None if self.shards is None else list(self.shards),
            "in_flight": self.in_flight,
            "lag": dict(self.lag),
            "stopped": self.stopped,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeRecord:
        shards = data.get("shards")
        return cls(
            node_id=str(data["node_id"]),
            role=str(data["role"]),
            version=str(data["version"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            started_at=float(data["started_at"]),
            heartbeat_at=float(data["heartbeat_at"]),
            interval=float(data["interval"]),
            shards=None if shards is None else tuple(int(s) for s in shards),
            in_flight=int(data.get("in_flight", 0)),
            lag={str(k): int(v) for k, v in (data.get("lag") or {}).items()},
            stopped=bool(data.get("stopped", False)),
            config=dict(data.get("config") or {}),
        )


class NodeDirectory(Protocol):
    """Where processes publish their heartbeats and everyone reads them (beside the event log)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, record: NodeRecord) -> None:
        """Insert or replace the record of ``record.node_id``."""

    async def nodes(self) -> builtins.list[NodeRecord]:
        """Every record kept, by node id (records of long-gone nodes may expire)."""


class AuditConflict(Exception):
    """Another appender took that place in the audit chain first: read the head and seal again."""

    def __init__(self, sequence: int) -> None:
        super().__init__(f"audit record {sequence} is already taken")
        self.sequence = sequence


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One sealed audit record as stored: its place in the chain (1, 2, ...) and its canonical
    JSON (``orchestrator.audit.record``), which carries its own hash and its predecessor's."""

    sequence: int
    body: bytes


class AuditLog(Protocol):
    """The append-only audit chain, beside the event log (same URL). No update, no delete.

    ``append`` is conditional on the sequence: of two appenders sealing the same place, one
    wins and the other gets AuditConflict, so concurrent processes never fork the chain."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def append(self, entry: AuditEntry) -> None:
        """Store ``entry`` if its sequence is free, else AuditConflict; ValueError below 1."""

    async def last(self) -> AuditEntry | None:
        """The entry with the highest sequence; None when the chain is empty."""

    async def read(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Entries with sequence > ``after``, in sequence order, at most ``limit``."""


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """One schedule's stored state (a JSON object) and its version; version 0: never written."""

    key: str
    version: int
    body: dict[str, Any] = field(default_factory=dict)


class ScheduleStates(Protocol):
    """Each schedule's state with compare-and-set, beside the event log (``triggers.schedules``).

    The conditional write is the fence that makes every process sharing the store decide each
    fire time of a schedule once: whoever saves first decided it, the others load and go on."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def load(self, key: str) -> ScheduleRecord:
        """The stored state (version 0 and an empty body when there is none)."""

    async def save(self, key: str, expected_version: int, body: dict[str, Any]) -> bool:
        """Store ``body`` as version ``expected_version + 1`` if the stored version is still
        ``expected_version``; False when another writer saved first (nothing is written)."""


class SecretsUnavailable(RuntimeError):
    """Secrets cannot be stored or read here: no key configured, a read-only store, a value
    sealed with another key. The message says what to configure."""


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown of a stored secret: never its value."""

    tenant: str
    name: str
    created_at: str  # RFC 3339
    updated_at: str
    key_id: str = ""  # the key that seals it, in an encrypted store

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "key_id": self.key_id,
        }


class SecretStore(Protocol):
    """Secret values by (tenant, name), read only by the worker that runs a step
    (``orchestrator/secrets/``). A store may be read-only (``put``/``delete``: SecretsUnavailable)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def get(self, tenant: str, name: str) -> str | None:
        """The value, None when this store has no such secret for that tenant."""

    async def put(self, tenant: str, name: str, value: str) -> SecretInfo:
        """Create or replace a secret."""

    async def delete(self, tenant: str, name: str) -> bool:
        """Remove a secret; False when there was none."""

    async def list(self, tenant: str) -> builtins.list[SecretInfo]:
        """The tenant's secrets by name, without values."""


class SecretRecords(Protocol):
    """Sealed secret values stored beside the event log (memory, SQLite, Cassandra); opaque
    bytes to the backend. ``orchestrator.secrets.sealed.SealedSecrets`` seals and opens them."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def put_sealed(self, tenant: str, name: str, sealed: bytes, key_id: str, now: str) -> SecretInfo:
        """Create or replace (keeping ``created_at``)."""

    async def get_sealed(self, tenant: str, name: str) -> bytes | None: ...

    async def delete(self, tenant: str, name: str) -> bool: ...

    async def list(self, tenant: str) -> builtins.list[SecretInfo]: ...

    async def tenants(self) -> builtins.list[str]:
        """Every tenant with a stored secret, sorted (re-sealing walks them)."""


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A browser session as stored: never its secret, only ``secret_hash`` (SHA-256 of it).

    ``principal`` is the JSON of the principal it acts as (``orchestrator.auth.sessions``
    encodes it); times are seconds since the epoch; ``revoked_at`` is None until revoked."""

    session_id: str
    secret_hash: bytes
    principal: str
    tenant: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


class SessionStore(Protocol):
    """Where sessions live, shared by every server process over the same backend.

    A session may be dropped once expired (``get`` may then answer None); a revoked one is kept
    until it expires, so ``get`` reports the revocation."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def put(self, session: StoredSession) -> None:
        """Store a new session (ids are random: never reused)."""

    async def get(self, session_id: str) -> StoredSession | None:
        """The session, or None when unknown (or dropped after expiry)."""

    async def revoke(self, session_id: str, at: float) -> StoredSession | None:
        """Mark it revoked at ``at`` (an earlier revocation is kept); the session, None if unknown."""
