"""Reaching and shaping the Cassandra keyspace: URL settings, the session, versioned migrations.

``Database`` owns one driver Cluster and Session: created in ``open()``, shut down (on a worker
thread, the call blocks) in ``close()``. Requests run on the driver's I/O thread; their
ResponseFutures are bridged into asyncio futures with ``add_callbacks`` and
``loop.call_soon_threadsafe``. Idempotent statements are retried with exponential backoff on
timeouts and unavailability; the driver reconnects to lost hosts with exponential backoff.

Migrations are an ordered list of (version, description, CQL statements). Every statement is
idempotent (``IF NOT EXISTS``), so a migration that died half-way is simply run again; its
version is recorded in ``schema_migrations`` only after all its statements succeeded. ``open()``
never creates tables: it checks the recorded versions and names ``orchestrator migrate URL``
when some are missing, unless the URL says ``migrate=auto``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import parse_qs, unquote, urlsplit

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    DependencyException,
    DriverException,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    ResultSet,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import ErrorMessage, IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import (
    BoundStatement,
    PreparedStatement,
    SimpleStatement,
    Statement,
    tuple_factory,
)

from orchestrator.lifecycle import Lifecycle
from orchestrator.ports import BackendUnavailable
from orchestrator.tls import TLS_PARAMETERS, TlsOptions, redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]

DEFAULT_PORT = 9042
PAGE_SIZE = 1000  # rows per request when reading long histories and listings
RETRY_ATTEMPTS = 5
RETRY_BASE_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0
SCHEMA_TIMEOUT_SECONDS = 60.0
_CAS_WRITE_UNKNOWN = 0x1700  # protocol v5 error: the outcome of a LWT is not known
_TRANSIENT: tuple[type[BaseException], ...] = (
    Unavailable, ReadTimeout, WriteTimeout, CoordinationFailure, OperationTimedOut,
    NoHostAvailable, ConnectionException, OverloadedErrorMessage, IsBootstrappingErrorMessage,
)  # fmt: skip
_PARAMETERS = (
    "consistency", "serial_consistency", "replication", "dc", "local_dc", "migrate",
    "connect_timeout", "request_timeout", "protocol_version", "feed_delay", *TLS_PARAMETERS,
)  # fmt: skip

Execute = Callable[[str, Sequence[object]], Awaitable[list[tuple[Any, ...]]]]
"""Run one CQL statement with positional parameters and return its rows (schema changes too)."""

SCOPE = "orchestrator"
KEYSPACE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema, applied once and in order; never edit one that has shipped."""

    version: int
    description: str
    statements: tuple[str, ...]  # CQL with ``{ks}`` for the keyspace


def _listing(name: str, partition: str) -> str:
    """A listing table: newest first inside one day bucket; the summary comes from ``events``."""
    columns = "".join(f"{column} text, " for column in partition.split(", "))
    return (
        f"CREATE TABLE IF NOT EXISTS {{ks}}.{name} ({columns}started_at text, execution_id text,"
        f" tenant text, PRIMARY KEY (({partition}), started_at, execution_id))"
        " WITH CLUSTERING ORDER BY (started_at DESC, execution_id DESC)"
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "event log: events with the summary as static columns, listing tables by day bucket",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.events (execution_id text, sequence bigint,"
            " event_id text, type text, time text, body blob,"
            " last_sequence bigint STATIC, workflow text STATIC, version int STATIC,"
            " tenant text STATIC, status text STATIC, started_at text STATIC,"
            " updated_at text STATIC, parent_id text STATIC,"
            " PRIMARY KEY ((execution_id), sequence)) WITH CLUSTERING ORDER BY (sequence ASC)",
            _listing("executions_by_day", "day"),
            _listing("executions_by_workflow", "workflow, day"),
            _listing("executions_by_status", "status, day"),
            "CREATE TABLE IF NOT EXISTS {ks}.execution_days (scope text, day text,"
            " PRIMARY KEY ((scope), day)) WITH CLUSTERING ORDER BY (day DESC)",
        ),
    ),
    Migration(
        2,
        "registry: definitions by (name, version), newest first, and the set of names",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.definitions (name text, version int, body text,"
            " PRIMARY KEY ((name), version)) WITH CLUSTERING ORDER BY (version DESC)",
            "CREATE TABLE IF NOT EXISTS {ks}.definition_names (scope text, name text,"
            " PRIMARY KEY ((scope), name))",
        ),
    ),
    Migration(
        3,
        "projections: timers by (shard, minute bucket) with a lookup by execution and a"
        " per-shard progress mark; the wait index by (event, correlation key)",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.timers (shard int, bucket bigint, fire_at double,"
            " execution_id text, timer_id text, due double,"
            " PRIMARY KEY ((shard, bucket), fire_at, execution_id, timer_id))"
            " WITH CLUSTERING ORDER BY (fire_at ASC, execution_id ASC, timer_id ASC)",
            "CREATE TABLE IF NOT EXISTS {ks}.timers_by_execution (execution_id text,"
            " timer_id text, shard int, bucket bigint, fire_at double, due double,"
            " PRIMARY KEY ((execution_id), timer_id))",
            "CREATE TABLE IF NOT EXISTS {ks}.timer_shard_progress (shard int, bucket bigint,"
            " PRIMARY KEY ((shard)))",
            "CREATE TABLE IF NOT EXISTS {ks}.waits (event text, correlation_key text,"
            " execution_id text, PRIMARY KEY ((event, correlation_key), execution_id))",
        ),
    ),
    Migration(
        4,
        "event log: snapshots by execution, newest first, and links between executions",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.snapshots (execution_id text, sequence bigint,"
            " body blob, PRIMARY KEY ((execution_id), sequence))"
            " WITH CLUSTERING ORDER BY (sequence DESC)",
            "CREATE TABLE IF NOT EXISTS {ks}.execution_links (execution_id text, relation text,"
            " other_id text, created_at text, PRIMARY KEY ((execution_id), relation, other_id))",
        ),
    ),
    Migration(
        5,
        "registry: operator overrides of triggers' enabled flags, by (workflow, trigger)",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.trigger_states (scope text, workflow text,"
            " trigger_name text, enabled boolean, PRIMARY KEY ((scope), workflow, trigger_name))",
        ),
    ),
    Migration(
        6,
        "global feed: one row per append attempt by minute bucket, the buckets by day, the"
        " execution's last feed position, and projection checkpoints",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.feed (bucket bigint, position bigint, attempt uuid,"
            " execution_id text, first_sequence bigint, last_sequence bigint, digest blob,"
            " PRIMARY KEY ((bucket), position, attempt))"
            " WITH CLUSTERING ORDER BY (position ASC, attempt ASC)",
            "CREATE TABLE IF NOT EXISTS {ks}.feed_buckets (day bigint, bucket bigint,"
            " PRIMARY KEY ((day), bucket))",
            "CREATE TABLE IF NOT EXISTS {ks}.feed_days (scope text, day bigint,"
            " PRIMARY KEY ((scope), day))",
            "ALTER TABLE {ks}.events ADD IF NOT EXISTS feed_position bigint STATIC",
            "CREATE TABLE IF NOT EXISTS {ks}.checkpoints (name text PRIMARY KEY, position bigint)",
        ),
    ),
    Migration(
        7,
        "recovery: the idle checks of running executions by (shard, minute bucket), with a"
        " per-shard progress mark (a projection of the events: idle.py)",
        (
            # Rows expire after 30 days; a row resurrected after gc_grace is harmless (it is
            # checked against the events partition), so tombstones go after 3 hours.
            "CREATE TABLE IF NOT EXISTS {ks}.recovery_checks (shard int, bucket bigint, since bigint,"
            " execution_id text, resumed bigint, idle int,"
            " PRIMARY KEY ((shard, bucket), since, execution_id))"
            " WITH CLUSTERING ORDER BY (since ASC, execution_id ASC)"
            " AND default_time_to_live = 2592000 AND gc_grace_seconds = 10800",
            "CREATE TABLE IF NOT EXISTS {ks}.recovery_progress (shard int, bucket bigint,"
            " PRIMARY KEY ((shard)))",
        ),
    ),
    Migration(
        8,
        "cluster: the node directory, one row per process (its last heartbeat), expiring",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.nodes (scope text, node_id text, body text,"
            " PRIMARY KEY ((scope), node_id))",
        ),
    ),
    Migration(
        9,
        "audit trail: the hash-chained records by (chain, bucket of 1,000 sequences) (audit.py)",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.audit_records (chain text, bucket bigint, sequence bigint,"
            " body text, PRIMARY KEY ((chain, bucket), sequence))"
            " WITH CLUSTERING ORDER BY (sequence ASC)",
        ),
    ),
    Migration(
        10,
        "encryption at rest: each tenant's data keys, wrapped by master key (data_keys.py)",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.data_keys (tenant text, key_id text, wrapped blob,"
            " created_at text, PRIMARY KEY ((tenant), key_id))",
            "CREATE TABLE IF NOT EXISTS {ks}.data_key_ids (scope text, key_id text, tenant text,"
            " PRIMARY KEY ((scope), key_id, tenant))",
        ),
    ),
    Migration(
        11,
        "analytics: aggregate cells by (tenant, workflow) and hour, the workflows of each tenant,"
        " the projection's per-execution tracks and SLA breaches by (tenant, day) (analytics.py)",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.analytics_cells (tenant text, workflow text, bucket bigint,"
            " version int, step text, body text, PRIMARY KEY ((tenant, workflow), bucket, version, step))",
            "CREATE TABLE IF NOT EXISTS {ks}.analytics_workflows (tenant text, workflow text,"
            " PRIMARY KEY ((tenant), workflow))",
            "CREATE TABLE IF NOT EXISTS {ks}.analytics_tracks (execution_id text PRIMARY KEY, body text)",
            "CREATE TABLE IF NOT EXISTS {ks}.analytics_breaches (tenant text, day bigint, at double,"
            " execution_id text, step text, workflow text, body text,"
            " PRIMARY KEY ((tenant, day), at, execution_id, step)) WITH CLUSTERING ORDER BY (at DESC,"
            " execution_id ASC, step ASC)",
        ),
    ),
    Migration(
        12,
        "schedules: each schedule's state with its version, written with lightweight transactions",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.schedule_states (key text PRIMARY KEY, version bigint,"
            " body text)",
        ),
    ),
    Migration(
        13,
        "secrets: sealed secret values (ciphertext only) by tenant and name",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.secrets (tenant text, name text, sealed blob,"
            " key_id text, created_at text, updated_at text, PRIMARY KEY ((tenant), name))",
        ),
    ),
    Migration(
        14,
        "access: API keys by id (the record and its last-used time), the list of key ids, and"
        " custom roles by tenant",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.api_keys (key_id text PRIMARY KEY, tenant text,"
            " body text, last_used_at double)",
            "CREATE TABLE IF NOT EXISTS {ks}.api_key_ids (scope text, key_id text,"
            " PRIMARY KEY ((scope), key_id))",
            "CREATE TABLE IF NOT EXISTS {ks}.custom_roles (tenant text, name text, grants text,"
            " PRIMARY KEY ((tenant), name))",
        ),
    ),
    Migration(
        15,
        "sessions: browser sessions by id (the SHA-256 of the secret, never the secret), each"
        " row written with a TTL that ends it when the session expires",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.sessions (session_id text PRIMARY KEY,"
            " secret_hash blob, principal text, tenant text, created_at double,"
            " expires_at double, revoked_at double) WITH gc_grace_seconds = 10800",
        ),
    ),
    Migration(
        17,
        "catalog: template versions by id (the first content of a version wins), every template"
        " id, and one review per reviewer",
        (
            "CREATE TABLE IF NOT EXISTS {ks}.catalog_versions (id text, version text, checksum text,"
            " entry text, PRIMARY KEY ((id), version))",
            "CREATE TABLE IF NOT EXISTS {ks}.catalog_ids (scope text, id text, PRIMARY KEY ((scope), id))",
            "CREATE TABLE IF NOT EXISTS {ks}.catalog_reviews (id text, reviewer text, review text,"
            " PRIMARY KEY ((id), reviewer))",
        ),
    ),
    Migration(  # the executions' ``started_by`` and ``correlation_key`` (``ExecutionSummary``)
        18, "event log: who started each execution and its latest correlation key, listed by each", (
            "ALTER TABLE {ks}.events ADD IF NOT EXISTS started_by text STATIC",
            "ALTER TABLE {ks}.events ADD IF NOT EXISTS correlation_key text STATIC",
            _listing("executions_by_starter", "started_by, day"),
            _listing("executions_by_correlation", "correlation_key, day"),
        ),
    ),
)
LATEST = MIGRATIONS[-1].version

_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (scope text, version int,"
    " description text, applied_at timestamp, PRIMARY KEY ((scope), version))"
)
_APPLIED = "SELECT version FROM {ks}.schema_migrations WHERE scope = %s"
_RECORD = (
    "INSERT INTO {ks}.schema_migrations (scope, version, description, applied_at)"
    " VALUES (%s, %s, %s, toTimestamp(now())) IF NOT EXISTS"
)


def replication_map(replication: int, datacenters: Mapping[str, int]) -> dict[str, str]:
    """SimpleStrategy with ``replication`` copies, or NetworkTopologyStrategy per datacenter."""
    if datacenters:
        return {"class": "NetworkTopologyStrategy", **{dc: str(n) for dc, n in datacenters.items()}}
    return {"class": "SimpleStrategy", "replication_factor": str(replication)}


def create_keyspace(keyspace: str, replication: Mapping[str, str]) -> str:
    options = ", ".join(f"'{key}': '{value}'" for key, value in replication.items())
    return f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{{options}}}"


async def applied_versions(execute: Execute, keyspace: str) -> set[int]:
    """Versions recorded in ``schema_migrations``; the table must exist."""
    rows = await execute(_APPLIED.format(ks=keyspace), (SCOPE,))
    return {version for (version, *_) in rows}


async def apply_migrations(
    execute: Execute, keyspace: str, replication: Mapping[str, str]
) -> list[Migration]:
    """Create the keyspace if needed and apply every migration not yet recorded, in order."""
    await execute(create_keyspace(keyspace, replication), ())
    await execute(_MIGRATIONS_DDL.format(ks=keyspace), ())
    done = await applied_versions(execute, keyspace)
    applied: list[Migration] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            await execute(statement.format(ks=keyspace), ())
        record = (SCOPE, migration.version, migration.description)
        rows = await execute(_RECORD.format(ks=keyspace), record)
        if rows and rows[0][0]:  # else a concurrent migrator recorded it first
            applied.append(migration)
    return applied


def pending(done: set[int]) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version not in done]


@dataclass(frozen=True, slots=True)
class CassandraSettings:
    """Where the cluster is, which keyspace, how consistent and how replicated."""

    url: str  # as given, password masked
    hosts: tuple[str, ...]
    keyspace: str
    port: int = DEFAULT_PORT
    consistency: str = "LOCAL_QUORUM"
    serial_consistency: str = "LOCAL_SERIAL"
    replication: int = 1
    datacenters: tuple[tuple[str, int], ...] = ()  # NetworkTopologyStrategy when not empty
    local_dc: str | None = None
    auto_migrate: bool = False
    connect_timeout: float = 5.0
    request_timeout: float = 12.0
    protocol_version: int = 5  # Cassandra 4.0+; set 4 for 3.x
    feed_delay: float = 5.0  # seconds before the feed serves a commit (cassandra/feed.py)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsOptions | None = None  # ssl_ca, ssl_cert, ssl_key, ssl_verify: connect with TLS

    @classmethod
    def from_url(cls, url: str) -> CassandraSettings:
        """``cassandra://[user:password@]host[:port][,host2[:port]...]/keyspace[?options]``.

        Options: ``consistency`` (LOCAL_QUORUM), ``serial_consistency`` (LOCAL_SERIAL),
        ``replication`` (1), ``dc=dc1:3,dc2:3`` (NetworkTopologyStrategy; a dc without a count
        takes ``replication``), ``local_dc`` (the first ``dc``), ``migrate=auto`` (create or
        upgrade the schema at start), ``connect_timeout`` (5) and ``request_timeout`` (12) seconds,
        ``protocol_version`` (5: Cassandra 4.0 and later), ``feed_delay`` (5 seconds before the
        global feed serves an append; see ``cassandra/feed.py`` for the rule it must satisfy),
        ``ssl_ca``, ``ssl_cert``, ``ssl_key``, ``ssl_verify`` (TLS: ``orchestrator/tls.py``; any
        of them turns TLS on, the system CAs verify the nodes unless ``ssl_ca`` names others).
        """
        parts = urlsplit(url)
        if parts.scheme != "cassandra":
            raise ValueError(f"{redact_url(url)!r} is not a cassandra://host[:port]/keyspace URL")
        userinfo, _, netloc = parts.netloc.rpartition("@")
        shown = redact_url(url)
        hosts, port = _hosts(netloc, shown)
        keyspace = parts.path.strip("/")
        if not KEYSPACE_NAME.fullmatch(keyspace):
            raise ValueError(f"{shown!r}: keyspace must match {KEYSPACE_NAME.pattern}")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if unknown := sorted(set(params) - set(_PARAMETERS)):
            raise ValueError(f"{shown!r}: unknown parameters {unknown}; known: {', '.join(_PARAMETERS)}")
        tls = TlsOptions.take(params, shown)
        consistency = params.get("consistency", "LOCAL_QUORUM").upper()
        serial = params.get("serial_consistency", "LOCAL_SERIAL").upper()
        if consistency not in ConsistencyLevel.name_to_value or "SERIAL" in consistency:
            raise ValueError(f"{shown!r}: unknown consistency {consistency!r}")
        if serial not in ("SERIAL", "LOCAL_SERIAL"):
            raise ValueError(f"{shown!r}: serial_consistency must be SERIAL or LOCAL_SERIAL")
        replication = _number(params, "replication", "1", int, shown)
        datacenters = _datacenters(params.get("dc", ""), replication, shown)
        migrate = params.get("migrate", "manual").lower()
        if migrate not in ("auto", "manual"):
            raise ValueError(f"{shown!r}: migrate must be auto or manual, not {migrate!r}")
        user, _, password = userinfo.partition(":")
        return cls(
            url=shown,
            hosts=hosts,
            keyspace=keyspace,
            port=port,
            consistency=consistency,
            serial_consistency=serial,
            replication=replication,
            datacenters=datacenters,
            local_dc=params.get("local_dc") or (datacenters[0][0] if datacenters else None),
            auto_migrate=migrate == "auto",
            connect_timeout=_number(params, "connect_timeout", "5", float, shown),
            request_timeout=_number(params, "request_timeout", "12", float, shown),
            protocol_version=_number(params, "protocol_version", "5", int, shown),
            feed_delay=_number(params, "feed_delay", "5", float, shown),
            username=unquote(user) or None,
            password=unquote(password) if userinfo else None,
            tls=tls,
        )

    @property
    def replication_options(self) -> dict[str, str]:
        return replication_map(self.replication, dict(self.datacenters))


def _hosts(netloc: str, shown: str) -> tuple[tuple[str, ...], int]:
    hosts: list[str] = []
    ports: set[int] = set()
    for item in netloc.split(","):
        if item.startswith("["):  # [ipv6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host:
            raise ValueError(f"{shown!r} names no host")
        if port and not port.isdigit():
            raise ValueError(f"{shown!r}: bad port {port!r}")
        hosts.append(host)
        ports.add(int(port) if port else DEFAULT_PORT)
    if len(ports) > 1:
        raise ValueError(f"{shown!r}: every host must use the same port")
    return tuple(hosts), ports.pop()


def _number(params: dict[str, str], name: str, default: str, kind: Callable[[str], T], shown: str) -> T:
    try:
        value = kind(params.get(name, default))
    except ValueError:
        raise ValueError(f"{shown!r}: {name} must be a number") from None
    if not cast(float, value) > 0:
        raise ValueError(f"{shown!r}: {name} must be positive")
    return value


def _datacenters(text: str, replication: int, shown: str) -> tuple[tuple[str, int], ...]:
    found: list[tuple[str, int]] = []
    for item in filter(None, text.split(",")):
        name, _, count = item.partition(":")
        if not name or (count and not count.isdigit()):
            raise ValueError(f"{shown!r}: dc must look like dc1:3,dc2:3")
        found.append((name, int(count) if count else replication))
    return tuple(found)


def _connection_class() -> type[Any]:
    """The driver's libev reactor when it was built, else asyncio's (never asyncore)."""
    try:
        from cassandra.io.libevreactor import LibevConnection
    except (ImportError, DependencyException):
        from cassandra.io.asyncioreactor import AsyncioConnection

        return cast(type[Any], AsyncioConnection)
    return cast(type[Any], LibevConnection)


CONNECT_ATTEMPTS = 3  # a connect whose every host timed out (a loaded node) is tried again


def only_timeouts(exc: BaseException) -> bool:
    """Whether every host of a failed connect timed out (it may answer when asked again); a
    refused connection or a wrong credential fails at once."""
    if not isinstance(exc, NoHostAvailable) or not exc.errors:
        return False
    return all(isinstance(error, OperationTimedOut) for error in exc.errors.values())


def describe(exc: BaseException) -> str:
    """One line naming what failed; NoHostAvailable lists each host's error."""
    if isinstance(exc, NoHostAvailable):
        errors = cast(dict[Any, BaseException], exc.errors or {})
        hosts = "; ".join(f"{host}: {type(e).__name__}: {e}" for host, e in errors.items())
        return f"no host available ({hosts or 'no hosts tried'})"
    return f"{type(exc).__name__}: {exc}"


def ambiguous(exc: BaseException) -> bool:
    """A failure after which a lightweight transaction may or may not have been applied."""
    if isinstance(exc, ErrorMessage) and getattr(exc, "code", None) == _CAS_WRITE_UNKNOWN:
        return True
    return isinstance(exc, _TRANSIENT)


def bridge(response: ResponseFuture, loop: asyncio.AbstractEventLoop) -> asyncio.Future[ResultSet]:
    """The driver's ResponseFuture (settled on its I/O thread) as an asyncio future."""
    future: asyncio.Future[ResultSet] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if future.done():
            return  # cancelled by the awaiting task
        if error is None:
            future.set_result(response.result())  # already final: does not block
        else:
            future.set_exception(error)

    def forward(error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    response.add_callbacks(lambda _rows: forward(None), forward)
    return future


async def backoff(attempt: int) -> None:
    """Sleep before retry ``attempt`` (1, 2, ...): exponential, capped, with jitter."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    await asyncio.sleep(ceiling * (0.5 + random.random() / 2))


class Database:
    """One driver Cluster and Session: lifecycle, prepared statements, async execution, retries."""

    def __init__(self, settings: CassandraSettings, component: str) -> None:
        self.settings = settings
        self.component = component
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self.serial = ConsistencyLevel.name_to_value[settings.serial_consistency]
        self.ks = settings.keyspace

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError(f"{self.settings.url}: {self.component} is not started")
        return self._session

    async def open(self, *, check_schema: bool = True) -> None:
        """Connect; then check the schema is current (or migrate it when configured to)."""
        settings = self.settings
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(settings.local_dc or "")),
            consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
            serial_consistency_level=self.serial,
            request_timeout=settings.request_timeout,
            row_factory=tuple_factory,
        )
        auth = None
        if settings.username is not None:
            auth = PlainTextAuthProvider(settings.username, settings.password or "")
        try:
            ssl_context = settings.tls.context() if settings.tls is not None else None
        except ValueError as exc:
            raise BackendUnavailable(f"cannot connect to {settings.url}: {exc}") from exc
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                cluster = Cluster(
                    contact_points=list(settings.hosts),
                    port=settings.port,
                    execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                    reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0),
                    connect_timeout=settings.connect_timeout,
                    control_connection_timeout=settings.connect_timeout,
                    connection_class=_connection_class(),
                    auth_provider=auth,
                    ssl_context=ssl_context,
                    protocol_version=settings.protocol_version,
                    # The driver writes requests in 4 KiB chunks; with Nagle's algorithm on, any
                    # request over 4 KiB (a batch of ten events) waits ~40 ms for a delayed ACK.
                    sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                )
            except DriverException as exc:  # e.g. UnresolvableContactPoints
                raise BackendUnavailable(f"cannot connect to {settings.url}: {describe(exc)}") from exc
            try:
                self._session = await asyncio.to_thread(cluster.connect)
                break
            except (NoHostAvailable, DriverException, OSError) as exc:
                await asyncio.to_thread(cluster.shutdown)
                if attempt < CONNECT_ATTEMPTS and only_timeouts(exc):  # slow to answer, not refused
                    await asyncio.sleep(attempt)  # then a fresh cluster object asks again
                    continue
                raise BackendUnavailable(f"cannot connect to {settings.url}: {describe(exc)}") from exc
        self._cluster = cluster
        try:
            if check_schema:
                await self._check_schema()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)  # joins the driver's threads

    async def migrate(self) -> list[Migration]:
        return await apply_migrations(self.cql, self.ks, self.settings.replication_options)

    async def _check_schema(self) -> None:
        url, ks = self.settings.url, self.ks
        if self.settings.auto_migrate:
            await self.migrate()
            return
        assert self._cluster is not None
        keyspace = self._cluster.metadata.keyspaces.get(ks)
        if keyspace is None or "schema_migrations" not in keyspace.tables:
            raise BackendUnavailable(
                f"{url}: keyspace {ks!r} has no orchestrator schema;"
                f" run `orchestrator migrate {url}` (or add ?migrate=auto for development)"
            )
        done = await applied_versions(self.cql, ks)
        if missing := pending(done):
            versions = ", ".join(f"{m.version} ({m.description})" for m in missing)
            raise BackendUnavailable(
                f"{url}: schema migrations not applied: {versions}; run `orchestrator migrate {url}`"
            )
        if newer := sorted(v for v in done if v > LATEST):
            raise BackendUnavailable(f"{url}: schema versions {newer} are newer than this code ({LATEST})")

    async def prepare(
        self, statements: dict[str, str], idempotent: bool = True
    ) -> dict[str, PreparedStatement]:
        """Prepare CQL (``{ks}`` is the keyspace) on a worker thread: the driver's call blocks."""

        def work() -> dict[str, PreparedStatement]:
            out: dict[str, PreparedStatement] = {}
            for name, cql in statements.items():
                prepared = self.session.prepare(cql.format(ks=self.ks))
                prepared.is_idempotent = idempotent
                out[name] = prepared
            return out

        try:
            return await asyncio.to_thread(work)
        except (NoHostAvailable, DriverException) as exc:
            raise BackendUnavailable(
                f"{self.settings.url}: cannot prepare statements: {describe(exc)}"
            ) from exc

    async def run(
        self, statement: Statement, *, paging_state: bytes | None = None, idempotent: bool = True
    ) -> ResultSet:
        """Execute; retry transient failures with backoff when the statement is idempotent."""
        loop = asyncio.get_running_loop()
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                response = self.session.execute_async(statement, paging_state=paging_state)
                return await bridge(response, loop)
            except _TRANSIENT as exc:
                if not idempotent:
                    raise
                if attempt == RETRY_ATTEMPTS:
                    raise BackendUnavailable(
                        f"{self.settings.url}: {attempt} attempts failed, last: {describe(exc)}"
                    ) from exc
                log.debug("retrying after %s", describe(exc))
                await backoff(attempt)
        raise AssertionError("unreachable")

    async def run_repeatable(self, statement: Statement, what: str) -> None:
        """Execute a conditional statement that is harmless to run again (``IF NOT EXISTS``):
        retried with backoff after any failure that may or may not have applied it."""
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                await self.run(statement, idempotent=False)
                return
            except Exception as exc:
                if not ambiguous(exc):
                    raise
                if attempt == RETRY_ATTEMPTS:
                    raise BackendUnavailable(f"{self.settings.url}: {what}: {describe(exc)}") from exc
                await backoff(attempt)

    async def rows(self, prepared: PreparedStatement, *values: object) -> list[Row]:
        """All rows of a short query (one page)."""
        return list((await self.run(prepared.bind(values))).current_rows)

    async def pages(self, statement: BoundStatement, page_size: int = PAGE_SIZE) -> AsyncIterator[list[Row]]:
        """Rows page by page, each page one request (``fetch_size`` rows)."""
        statement.fetch_size = page_size
        state: bytes | None = None
        while True:
            result = await self.run(statement, paging_state=state)
            yield list(result.current_rows)
            state = result.paging_state
            if state is None:
                return

    async def cql(self, text: str, params: Sequence[object]) -> list[Row]:
        """An unprepared statement (schema changes and migrations), with a long timeout."""
        statement = SimpleStatement(text)
        loop = asyncio.get_running_loop()
        response = self.session.execute_async(statement, tuple(params), timeout=SCHEMA_TIMEOUT_SECONDS)
        try:
            return list((await bridge(response, loop)).current_rows)
        except _TRANSIENT as exc:
            raise BackendUnavailable(f"{self.settings.url}: {text[:60]}...: {describe(exc)}") from exc


class CassandraBackend(Lifecycle):
    """The lifecycle of a backend over one keyspace (event log, registry, wait index): a
    ``Database`` session and the subclass's statements, prepared in ``start``."""

    STATEMENTS: ClassVar[dict[str, str]]
    CONDITIONAL: ClassVar[dict[str, str]]  # lightweight transactions: never retried blindly

    def __init__(self, settings: CassandraSettings, component: str) -> None:
        self.settings = settings
        self._db = Database(settings, component)
        self._cql: dict[str, PreparedStatement] = {}

    async def start(self) -> None:
        """Connect, check the schema (or migrate it with ``migrate=auto``), prepare statements."""
        await self._db.open()
        try:
            self._cql = await self._db.prepare(self.STATEMENTS)
            self._cql.update(await self._db.prepare(self.CONDITIONAL, idempotent=False))
        except BaseException:
            await self._db.close()
            raise

    async def stop(self) -> None:
        await self._db.close()

    @property
    def database(self) -> Database:
        return self._db

    @property
    def statements(self) -> Mapping[str, PreparedStatement]:
        """The prepared statements by name (filled by ``start``)."""
        return self._cql


async def migrate(url: str) -> list[Migration]:
    """Create the keyspace and tables of ``url`` or bring them up to date; the ones applied now."""
    database = Database(CassandraSettings.from_url(url), "migrate")
    await database.open(check_schema=False)
    try:
        return await database.migrate()
    finally:
        await database.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m orchestrator.backends.cassandra.event_log migrate URL``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "migrate":
        print("usage: python -m orchestrator.backends.cassandra.event_log migrate cassandra://host/keyspace")
        return 2
    try:
        applied = asyncio.run(migrate(args[1]))
    except (BackendUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for migration in applied:
        print(f"applied {migration.version}: {migration.description}")
    if not applied:
        print("schema is up to date")
    return 0
