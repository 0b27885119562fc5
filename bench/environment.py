"""The versions of everything a benchmark run measures and the durability settings in force.

    python -m bench.environment [--distributed] [--peers] [--synchronous full|normal] [--json]

``collect`` returns ``{"versions": {name: version}, "durability": {name: {"value", "source"}}}``;
``environment_lines`` renders it as Markdown. A value is read where it can be: back from a
connection or client object built by the orchestrator's own code, from a server (DescribeConfigs,
``system_views.settings``, the AMQP handshake), from the command line of the process listening on
a service's port. Otherwise it is the configured value and ``source`` says where it is configured.
Every lookup fails soft: ``"unknown (<reason>)"``, never an exception, within ``TIMEOUT`` seconds.

Call ``collect`` from synchronous code: it runs its own event loops.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.d"
KAFKA_TEMPLATE = SERVICES / "kafka" / "server.properties.in"
CASSANDRA_TEMPLATE = SERVICES / "cassandra" / "cassandra.yaml.in"
TIMEOUT = 5.0  # seconds per server lookup
PROJECT_DISTRIBUTION = "orchestrator"  # [project].name in pyproject.toml
DISTRIBUTIONS = (
    "aiokafka",
    "faust-streaming",
    "aio-pika",
    "aiohttp",
    "pydantic",
    "cassandra-driver",
    "cryptography",
    "prometheus-client",
)
PEER_DISTRIBUTIONS = ("celery", "kombu", "dbos")
KAFKA_BROKER_CONFIGS = (
    "min.insync.replicas",
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "unclean.leader.election.enable",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.flush.scheduler.interval.ms",
)
CASSANDRA_SETTINGS = ("commitlog_sync", "commitlog_sync_period", "commitlog_sync_group_window")
LONG_MAX = 2**63 - 1  # Kafka's "never" for the flush intervals
SQLITE_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
SYNCHRONOUS_MEANING = {
    "FULL": "the WAL is fsynced at every commit",
    "NORMAL": "the WAL is fsynced at checkpoints only: a power loss can undo the last commits",
}
# DescribeConfigs config_source codes (KIP-226).
CONFIG_SOURCES = {
    1: "dynamic topic config",
    2: "dynamic broker config",
    3: "dynamic cluster-wide default",
    4: "static broker config (server.properties)",
    5: "Kafka default",
    6: "dynamic broker logger config",
}
Setting = dict[str, str]


# ---- Small helpers ----------------------------------------------------------------------------
def unknown(reason: BaseException | str) -> str:
    """``unknown (<reason>)``, the reason cut to one short line."""
    if isinstance(reason, BaseException):
        name, text = type(reason).__name__, str(reason)
        reason = text if text.startswith(name) else f"{name}: {text}".strip().rstrip(":")
    return f"unknown ({' '.join(reason.split())[:200]})"


def setting(value: object, source: str) -> Setting:
    return {"value": str(value), "source": source}


def soft(lookup: Callable[[], str]) -> str:
    """The lookup's answer, or ``unknown (<why>)``."""
    try:
        return lookup()
    except Exception as exc:
        return unknown(exc)


def section(name: str, where: str, lookup: Callable[[], dict[str, Setting]]) -> dict[str, Setting]:
    """A group of settings, or one ``unknown (<why>)`` row for the whole group."""
    try:
        return lookup()
    except Exception as exc:
        return {f"{name} settings": setting(unknown(exc), where)}


async def within(awaitable: Awaitable[Any], what: str, timeout: float = TIMEOUT) -> Any:
    """``awaitable``'s result; TimeoutError with a readable message after ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise TimeoutError(f"{what}: no answer within {timeout:g}s") from None


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines of a Java properties file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def yaml_top_level(text: str, names: Iterable[str]) -> dict[str, str]:
    """Top-level ``name: value`` scalars of a YAML file, read line by line (the services'
    templates hold ``@PLACEHOLDERS@``, which a YAML parser rejects)."""
    found: dict[str, str] = {}
    for name in names:
        match = re.search(rf"^{re.escape(name)}:[ \t]*([^#\n]*)", text, re.MULTILINE)
        if match:
            found[name] = match.group(1).strip().strip("\"'")
    return found


def markdown_cell(value: object) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


# ---- Endpoints and the processes behind them --------------------------------------------------
@dataclass(frozen=True)
class Endpoints:
    """Where the distributed benchmark's servers are (the bench modules' own defaults)."""

    kafka: str
    cassandra: str
    amqp: str

    @classmethod
    def of_bench(cls) -> Endpoints:
        from bench.distributed import run_distributed
        from bench.trigger_parts import AMQP

        defaults = inspect.signature(run_distributed).parameters
        return cls(defaults["broker"].default, defaults["cassandra"].default, AMQP)


def host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    return host, int(port or default_port)


def is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def listening_pid(port: int) -> int | None:
    """The process with a TCP socket listening on ``port`` on this machine (/proc), if visible."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            for fd in (process / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(process.name)
        except OSError:  # gone, or not ours to look at
            continue
    return None


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]


@dataclass(frozen=True)
class Server:
    """The local process listening on a server's port, or why there is none."""

    pid: int | None
    args: tuple[str, ...]
    why_not: str

    @classmethod
    def on(cls, address: str, default_port: int) -> Server:
        host, port = host_port(address, default_port)
        if not is_local(host):
            return cls(None, (), f"{host} is not this machine")
        pid = listening_pid(port)
        if pid is None:
            return cls(None, (), f"no process on this machine is seen listening on port {port}")
        try:
            return cls(pid, tuple(command_line(pid)), "")
        except OSError as exc:
            return cls(None, (), f"cannot read the command line of pid {pid}: {exc}")

    def java_version(self) -> str:
        """The version of the JVM this process runs (its executable, asked with ``-version``)."""
        if self.pid is None:
            return unknown(self.why_not)
        exe = os.readlink(f"/proc/{self.pid}/exe")
        if exe.endswith(" (deleted)"):
            return unknown(f"{exe}: replaced since the process started")
        if Path(exe).name != "java":
            return unknown(f"pid {self.pid} runs {exe}, not a java executable")
        done = subprocess.run(
            [exe, "-version"], capture_output=True, text=True, timeout=2 * TIMEOUT, check=False
        )
        match = re.search(r"\(build ([^)]+)\)", done.stderr) or re.search(r'version "([^"]+)"', done.stderr)
        if not match:
            return unknown(f"{exe} -version said {done.stderr[:100]!r}")
        return f"{match.group(1)} ({exe}, pid {self.pid})"

    def classpath(self) -> list[Path]:
        """The jar files of a JVM command line's ``-cp`` (``dir/*`` expanded)."""
        args = list(self.args)
        jars: list[Path] = []
        for flag in ("-cp", "-classpath", "--class-path"):
            if flag in args[:-1]:
                for entry in args[args.index(flag) + 1].split(os.pathsep):
                    path = Path(entry)
                    jars += sorted(path.parent.glob("*.jar")) if path.name == "*" else [path]
        return jars

    def system_property(self, name: str) -> str | None:
        prefix = f"-D{name}="
        return next((arg.removeprefix(prefix) for arg in self.args if arg.startswith(prefix)), None)


def kafka_version(broker: Server, port: int) -> str:
    """From the ``kafka_<scala>-<version>.jar`` on the classpath of the process on the port."""
    if broker.pid is None:
        return unknown(broker.why_not)
    for jar in broker.classpath():
        match = re.fullmatch(r"kafka_([\d.]+)-(\d[\w.]*?)\.jar", jar.name)
        if match:
            return f"{match.group(2)} ({jar.name} on the classpath of pid {broker.pid}, listening on port {port})"
    return unknown(f"no kafka_<scala>-<version>.jar on the classpath of pid {broker.pid}")


# ---- Versions ---------------------------------------------------------------------------------
def distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def project_commit() -> str:
    """The checked-out commit of this repository, and whether files differ from it."""

    def git(*args: str) -> str:
        command = ["git", "--no-optional-locks", "-C", str(ROOT), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD")
    return commit + (
        " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    )


def package_versions(peers: bool) -> dict[str, str]:
    versions = {
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        "sqlite3 library": sqlite3.sqlite_version,
        PROJECT_DISTRIBUTION: distribution_version(PROJECT_DISTRIBUTION),
        f"{PROJECT_DISTRIBUTION} commit": soft(project_commit),
    }
    for name in DISTRIBUTIONS + (PEER_DISTRIBUTIONS if peers else ()):
        versions[name] = distribution_version(name)
    return versions


# ---- Embedded: the SQLite event log -----------------------------------------------------------
async def sqlite_pragmas(synchronous: str) -> dict[str, str]:
    """journal_mode and synchronous as set on the connection ``SQLiteEventLog`` opens itself."""
    from orchestrator.backends.sqlite import SQLiteEventLog

    with tempfile.TemporaryDirectory() as folder:
        log = SQLiteEventLog.from_url(f"sqlite:///{folder}/environment.db?synchronous={synchronous}")
        await log.start()
        try:
            database = log._db  # the log's own connection: per-connection settings live there

            def read() -> dict[str, str]:
                execute = database.connection.execute
                return {
                    name: str(execute(f"PRAGMA {name}").fetchone()[0])
                    for name in ("journal_mode", "synchronous")
                }

            return await database.run(read)
        finally:
            await log.stop()


def embedded_settings(synchronous: str) -> dict[str, Setting]:
    from orchestrator.backends import sqlite as sqlite_backend
    from orchestrator.backends.inprocess import InProcessTransport

    where = "PRAGMA on the connection SQLiteEventLog opened (orchestrator/backends/sqlite/), read back"
    try:
        pragmas = asyncio.run(within(sqlite_pragmas(synchronous), "opening a SQLite event log"))
        journal = pragmas["journal_mode"]
        level = SQLITE_SYNCHRONOUS.get(int(pragmas["synchronous"]), pragmas["synchronous"])
        synchronous_value = f"{level}: {SYNCHRONOUS_MEANING.get(level, 'see the SQLite documentation')}"
    except Exception as exc:
        journal = synchronous_value = unknown(exc)
    durable = InProcessTransport.durable
    return {
        "SQLite journal_mode": setting(journal, where),
        "SQLite synchronous": setting(synchronous_value, f"{where}; requested: synchronous={synchronous}"),
        "SQLite group commit": setting(
            f"one transaction per batch of the appends queued during the previous commit, "
            f"at most {sqlite_backend.MAX_BATCH}; every append returns once its batch committed",
            "orchestrator.backends.sqlite.MAX_BATCH and SQLiteEventLog's writer",
        ),
        "in-process transport": setting(
            f"durable={durable}: "
            + (
                "commands and tasks in flight survive a crash"
                if durable
                else "commands and tasks in flight are lost in a crash; running executions resume "
                "from the event log at the next start"
            ),
            "orchestrator.backends.inprocess.InProcessTransport.durable",
        ),
    }


# ---- Kafka ------------------------------------------------------------------------------------
async def kafka_client_settings(broker: str) -> dict[str, Setting]:
    """Build the producer and a consumer exactly as ``KafkaTransport`` does (not started: no
    connection) and read their settings back."""
    from orchestrator.backends.kafka.transport import KafkaTransport, group_consumer

    transport = KafkaTransport.from_url(f"kafka://{broker}")
    producer = transport.new_producer()
    consumer = group_consumer(transport.options, transport.options.commands)
    try:  # aiokafka keeps these in private attributes; a rename shows as "unknown (...)"
        acks = soft(lambda: {-1: "all (-1)", 0: "0", 1: "1 (leader only)"}[producer._sender._acks])
        idempotent = soft(lambda: str(producer._txn_manager is not None))
        auto_commit = soft(lambda: str(consumer._enable_auto_commit))
        isolation = soft(lambda: str(consumer._isolation_level))
    finally:
        await producer.stop()
        await consumer.stop()
    built = "read back from the AIOKafkaProducer KafkaTransport.new_producer() builds (orchestrator/backends/kafka/transport.py)"
    consumed = "read back from the AIOKafkaConsumer of KafkaTransport's consumer group (orchestrator/backends/kafka/transport.py)"
    return {
        "Kafka producer acks": setting(acks, built),
        "Kafka producer enable_idempotence": setting(idempotent, built),
        "Kafka consumer enable_auto_commit": setting(
            f"{auto_commit}: offsets are committed by the transport after the handler returned, up to "
            "each partition's lowest unfinished record (commits batched)",
            f"{consumed}; commit policy: KafkaTransport (orchestrator/backends/kafka/transport.py)",
        ),
        "Kafka consumer isolation_level": setting(isolation, consumed),
        "Kafka topic replication factor (transport)": setting(
            transport.options.replication,
            "KafkaOptions default (orchestrator/backends/kafka/client.py): the bench's kafka:// URLs set no "
            "replication=; raw-client topics are auto-created with the broker's default.replication.factor",
        ),
    }


@dataclass(frozen=True)
class Configs:
    """Named settings of a server: ``values`` (None: not set / null), where they were read, and
    why the server itself could not be asked (empty when it was)."""

    values: dict[str, str | None]
    where: dict[str, str]
    failure: str = ""


async def kafka_broker_configs(broker: str) -> tuple[Configs, int]:
    """The ``KAFKA_BROKER_CONFIGS`` from DescribeConfigs (the first broker's answer for each
    name), and the number of brokers."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=int(TIMEOUT * 1000))
    try:
        await admin.start()
        brokers = sorted(admin._client.cluster.brokers(), key=lambda b: b.nodeId)
        wanted = dict.fromkeys(KAFKA_BROKER_CONFIGS)
        resources = [ConfigResource(ConfigResourceType.BROKER, str(b.nodeId), dict(wanted)) for b in brokers]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    values: dict[str, str | None] = {}
    where: dict[str, str] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                raise RuntimeError(f"broker {resource['resource_name']}: {resource['error_message']}")
            for entry in resource["config_entries"]:
                name = entry["config_names"]
                if name not in where:
                    values[name] = entry["config_value"]
                    source = CONFIG_SOURCES.get(entry.get("config_source", 0), "source not reported")
                    where[name] = (
                        f"DescribeConfigs, broker {resource['resource_name']} at {broker} ({source})"
                    )
    return Configs(values, where), len(brokers)


def config_file(broker: Server, suffix: str, flag: str | None, template: Path) -> Path:
    """The configuration file of the process on the port (the last argument ending in ``suffix``,
    or the ``-D<flag>=file://...`` system property), else the services' template."""
    named = (
        broker.system_property(flag)
        if flag
        else next((a for a in broker.args[::-1] if a.endswith(suffix)), None)
    )
    file = Path(named.removeprefix("file://")) if named else None
    return file if file is not None and file.is_file() else template


def configs_from_file(file: Path, values: dict[str, str], names: Iterable[str], failure: str) -> Configs:
    where = f"{file} (the server could not be asked)"
    return Configs({name: values.get(name) for name in names}, dict.fromkeys(names, where), failure)


def kafka_fsync(configs: Configs, brokers: str) -> str:
    """What the flush settings mean (unset ones take Kafka's defaults: never)."""
    values = configs.values
    messages = int(values.get("log.flush.interval.messages") or LONG_MAX)
    scheduler = int(values.get("log.flush.scheduler.interval.ms") or LONG_MAX)
    interval = int(values.get("log.flush.interval.ms") or scheduler)  # unset: the scheduler's interval
    if messages == LONG_MAX and interval == LONG_MAX:
        flush = "no fsync per message or per acknowledgement: the broker leaves flushing to the OS"
    elif messages == 1:
        flush = "an fsync for every message"
    else:
        flush = f"an fsync every {messages} messages or {interval} ms, whichever comes first"
    return (
        f"{flush}; with acks=all an acknowledged record is in the page cache of every in-sync replica, "
        f"so durability rests on replication ({brokers} broker(s), "
        f"min.insync.replicas={values.get('min.insync.replicas') or '?'})"
    )


def kafka_settings(endpoints: Endpoints, broker: Server) -> dict[str, Setting]:
    try:
        result: dict[str, Setting] = asyncio.run(
            within(kafka_client_settings(endpoints.kafka), "building the Kafka clients")
        )
    except Exception as exc:
        result = {"Kafka clients": setting(unknown(exc), "KafkaTransport (orchestrator/backends/kafka/transport.py)")}
    try:
        configs, count = asyncio.run(
            within(kafka_broker_configs(endpoints.kafka), f"Kafka at {endpoints.kafka}")
        )
        brokers = str(count)
    except Exception as exc:
        file = config_file(broker, ".properties", None, KAFKA_TEMPLATE)
        configs = configs_from_file(
            file, parse_properties(file.read_text()), KAFKA_BROKER_CONFIGS, unknown(exc)
        )
        brokers = "?"
    result["Kafka brokers"] = setting(configs.failure or brokers, f"cluster metadata from {endpoints.kafka}")
    for name in KAFKA_BROKER_CONFIGS:
        value = configs.values.get(name)
        shown = value if value is not None else "unset (Kafka's default applies)"
        result[f"Kafka broker {name}"] = setting(
            shown, configs.where.get(name, f"not reported by {endpoints.kafka}")
        )
    result["Kafka fsync"] = setting(kafka_fsync(configs, brokers), "derived from the broker settings above")
    return result


# ---- Cassandra --------------------------------------------------------------------------------
def cassandra_facts(address: str) -> dict[str, Any]:
    """Release version, commit-log settings (``Configs``) and node count, from the server."""
    from cassandra.cluster import Cluster

    host, port = host_port(address, 9042)
    cluster = Cluster([host], port=port, connect_timeout=TIMEOUT, control_connection_timeout=TIMEOUT)
    try:
        session = cluster.connect()
        facts: dict[str, Any] = {
            "release_version": session.execute(
                "SELECT release_version FROM system.local", timeout=TIMEOUT
            ).one()[0]
        }
        names = ", ".join(f"'{name}'" for name in CASSANDRA_SETTINGS)
        try:
            query = f"SELECT name, value FROM system_views.settings WHERE name IN ({names})"
            values = {row.name: row.value for row in session.execute(query, timeout=TIMEOUT)}
            where = f"system_views.settings at {address}"
            facts["settings"] = Configs(
                {name: values.get(name) for name in CASSANDRA_SETTINGS},
                dict.fromkeys(CASSANDRA_SETTINGS, where),
            )
        except Exception as exc:  # before Cassandra 4.0 there are no virtual tables
            facts["settings_error"] = unknown(exc)
        facts["nodes"] = 1 + len(list(session.execute("SELECT peer FROM system.peers", timeout=TIMEOUT)))
        return facts
    finally:
        cluster.shutdown()


def cassandra_settings(endpoints: Endpoints, node: Server, facts: dict[str, Any] | str) -> dict[str, Setting]:
    from cassandra import ConsistencyLevel
    from cassandra.cluster import ExecutionProfile

    from orchestrator.backends.cassandra.schema import CassandraSettings

    if isinstance(facts, dict) and "settings" in facts:
        commitlog: Configs = facts["settings"]
    else:
        file = config_file(node, ".yaml", "cassandra.config", CASSANDRA_TEMPLATE)
        failure = facts if isinstance(facts, str) else facts["settings_error"]
        values = yaml_top_level(file.read_text(), CASSANDRA_SETTINGS)
        commitlog = configs_from_file(file, values, CASSANDRA_SETTINGS, failure)
    result: dict[str, Setting] = {}
    if commitlog.failure:
        result["Cassandra settings"] = setting(
            commitlog.failure, f"system_views.settings at {endpoints.cassandra}"
        )
    for name in CASSANDRA_SETTINGS:
        value = commitlog.values.get(name)
        shown = value if value is not None else "unset (Cassandra's default applies)"
        result[f"Cassandra {name}"] = setting(shown, commitlog.where[name])
    if commitlog.values.get("commitlog_sync") == "periodic":
        result["Cassandra fsync"] = setting(
            f"periodic: a write is acknowledged before its commit-log fsync, which runs every "
            f"{commitlog.values.get('commitlog_sync_period') or '?'}; a crash of a node can lose up to that "
            "much acknowledged data, replication is the protection",
            "derived from commitlog_sync above",
        )
    unsafe = node.system_property("cassandra.unsafesystem") if node.pid is not None else None
    result["Cassandra unsafesystem"] = setting(
        unknown(node.why_not)
        if node.pid is None
        else f"{unsafe}: system keyspace tables are written without fsync"
        if unsafe == "true"
        else str(unsafe or "not set"),
        "-Dcassandra.unsafesystem on the command line of the process on the CQL port"
        + (f" (pid {node.pid})" if node.pid is not None else ""),
    )
    result["Cassandra nodes"] = setting(
        facts["nodes"] if isinstance(facts, dict) else facts,
        f"system.peers at {endpoints.cassandra}, plus the node answering",
    )
    bench = CassandraSettings.from_url(f"cassandra://{endpoints.cassandra}/bench?migrate=auto")
    configured = (
        "CassandraSettings (orchestrator/backends/cassandra/schema.py) for the bench's cassandra:// URL "
        "(bench/distributed.py: no consistency or replication option, so the defaults)"
    )
    result["Cassandra event log consistency"] = setting(bench.consistency, configured)
    result["Cassandra event log serial consistency"] = setting(
        f"{bench.serial_consistency}: every append is one lightweight transaction (a Paxos round; "
        "a conditional single-partition batch)",
        f"{configured}; appends: orchestrator/backends/cassandra/event_log.py",
    )
    result["Cassandra keyspace replication"] = setting(
        ", ".join(f"{key}={value}" for key, value in bench.replication_options.items()),
        f"{configured}; the keyspace is created per run (CREATE KEYSPACE with these options) and dropped after",
    )
    floor = ConsistencyLevel.value_to_name[ExecutionProfile().consistency_level]
    result["Cassandra raw-floor insert consistency"] = setting(
        floor, "cassandra-driver's default execution profile (bench/distributed.py cassandra_floor sets none)"
    )
    return result


# ---- RabbitMQ ---------------------------------------------------------------------------------
async def rabbitmq_properties(url: str) -> dict[str, Any]:
    """The server properties RabbitMQ sends in the AMQP handshake."""
    import aio_pika

    connection = await within(aio_pika.connect(url, timeout=TIMEOUT), f"RabbitMQ at {masked(url)}")
    try:
        properties = dict(connection.transport.connection.server_properties)
    finally:
        await connection.close()
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in properties.items()}


def masked(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@") if parts.password else url


def rabbitmq_settings(properties: dict[str, Any] | str) -> dict[str, Setting]:
    code = (
        "bench/raw_limits.py, bench/trigger_parts.py (as connectors/amqp_publish.py and triggers/amqp_source.py)"
    )
    if isinstance(properties, dict):
        capable = str(properties.get("capabilities", {}).get("publisher_confirms", "not advertised"))
    else:
        capable = "not known, the server was not reached"
    return {
        "RabbitMQ messages": setting("persistent (delivery_mode=2)", code),
        "RabbitMQ publisher confirms": setting(
            "on: each publish awaits the broker's confirm, which RabbitMQ sends for a persistent message "
            f"on a durable queue once it is written to disk (server advertises publisher_confirms: {capable})",
            f"{code}; capability from the AMQP handshake",
        ),
        "RabbitMQ queues": setting("durable, no x-queue-type argument (the server's default type)", code),
    }


# ---- Peers ------------------------------------------------------------------------------------
def celery_settings() -> dict[str, Setting]:
    from bench.peers import celery_app

    conf = celery_app.app.conf
    where = "app.conf of bench/peers/celery_app.py, read back"
    queue = celery_app.app.amqp.queues[conf.task_default_queue]
    return {
        "Celery task_default_delivery_mode": setting(conf.task_default_delivery_mode, where),
        "Celery publisher confirms (confirm_publish)": setting(
            conf.broker_transport_options.get("confirm_publish", False), where
        ),
        "Celery task_acks_late": setting(conf.task_acks_late, where),
        "Celery task_reject_on_worker_lost": setting(conf.task_reject_on_worker_lost, where),
        "Celery queue durable": setting(queue.durable, f"{where} (kombu queue {queue.name})"),
        "Celery result backend": setting(
            f"{conf.result_backend} (result_persistent={conf.result_persistent})", where
        ),
    }


def dbos_settings() -> dict[str, Setting]:
    from bench.peers import run_peers

    journal = inspect.signature(run_peers).parameters["dbos_journal"].default
    with tempfile.TemporaryDirectory() as folder:
        connection = sqlite3.connect(Path(folder) / "probe.db")
        try:
            connection.execute(f"PRAGMA journal_mode = {'WAL' if journal == 'wal' else 'DELETE'}")
            level = connection.execute("PRAGMA synchronous").fetchone()[0]
        finally:
            connection.close()
    name = SQLITE_SYNCHRONOUS.get(level, str(level))
    return {
        "DBOS system database journal_mode": setting(
            journal.upper(),
            "run_peers(dbos_journal=...) default (bench/peers/__init__.py); bench/peers/dbos_peer.py sets it "
            "on the file before DBOS opens it",
        ),
        "DBOS system database synchronous": setting(
            f"{name}: DBOS sets none, so SQLite's default for this library",
            "PRAGMA synchronous on a fresh connection of this Python's sqlite3 in that journal mode",
        ),
        "DBOS checkpoints": setting(
            "every step's output is committed to the system database before the next step starts",
            "DBOS Transact's step semantics, as used by bench/peers/dbos_peer.py",
        ),
    }


# ---- Everything -------------------------------------------------------------------------------
def collect(
    *, synchronous: str, distributed: bool, peers: bool, endpoints: Endpoints | None = None
) -> dict[str, Any]:
    """``{"versions": {...}, "durability": {...}}``; see the module docstring. ``endpoints``
    defaults to the bench modules' own server addresses."""
    versions = package_versions(peers)
    durability = section("embedded", "orchestrator/backends/", lambda: embedded_settings(synchronous))
    if not (distributed or peers):
        return {"versions": versions, "durability": durability}
    try:
        servers = endpoints or Endpoints.of_bench()
    except Exception as exc:
        versions["servers"] = unknown(exc)
        return {"versions": versions, "durability": durability}
    try:
        properties: dict[str, Any] | str = asyncio.run(rabbitmq_properties(servers.amqp))
    except Exception as exc:
        properties = unknown(exc)
    versions["RabbitMQ"] = (
        f"{properties.get('version', '?')} ({properties.get('platform', '?')}; "
        f"AMQP handshake with {masked(servers.amqp)})"
        if isinstance(properties, dict)
        else properties
    )
    if distributed:
        broker = Server.on(servers.kafka, 9092)
        node = Server.on(servers.cassandra, 9042)
        versions["Kafka broker"] = soft(lambda: kafka_version(broker, host_port(servers.kafka, 9092)[1]))
        try:
            facts: dict[str, Any] | str = cassandra_facts(servers.cassandra)
        except Exception as exc:
            facts = unknown(exc)
        versions["Cassandra"] = (
            f"{facts['release_version']} (system.local at {servers.cassandra})"
            if isinstance(facts, dict)
            else facts
        )
        versions["Java (Kafka)"] = soft(broker.java_version)
        versions["Java (Cassandra)"] = soft(node.java_version)
        durability.update(section("Kafka", servers.kafka, lambda: kafka_settings(servers, broker)))
        durability.update(
            section("Cassandra", servers.cassandra, lambda: cassandra_settings(servers, node, facts))
        )
        durability.update(section("RabbitMQ", "bench/", lambda: rabbitmq_settings(properties)))
    if peers:
        durability.update(section("Celery", "bench/peers/celery_app.py", celery_settings))
        durability.update(section("DBOS", "bench/peers/dbos_peer.py", dbos_settings))
    return {"versions": versions, "durability": durability}


def environment_lines(env: dict[str, Any]) -> list[str]:
    """Markdown: a heading, a table of versions and one of durability settings."""
    lines = ["### Versions and durability settings", "", "| component | version |", "|---|---|"]
    lines += [
        f"| {markdown_cell(name)} | {markdown_cell(version)} |" for name, version in env["versions"].items()
    ]
    lines += ["", "| setting | value | where it was read from |", "|---|---|---|"]
    lines += [
        f"| {markdown_cell(name)} | {markdown_cell(item['value'])} | {markdown_cell(item['source'])} |"
        for name, item in env["durability"].items()
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.environment", description="Versions and durability settings of a benchmark run."
    )
    parser.add_argument("--distributed", action="store_true", help="also Kafka, Cassandra and RabbitMQ")
    parser.add_argument("--peers", action="store_true", help="also Celery and DBOS (and RabbitMQ)")
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument("--json", action="store_true", help="print the JSON form instead of Markdown")
    args = parser.parse_args(argv)
    env = collect(synchronous=args.synchronous, distributed=args.distributed, peers=args.peers)
    print(json.dumps(env, indent=2) if args.json else "\n".join(environment_lines(env)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
