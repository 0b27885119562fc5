"""bench/environment.py without services: parsing, read-back of the embedded settings, fail-soft
lookups against a closed port, the Markdown shape, and the claims it makes about the bench code."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import time
import tomllib
from pathlib import Path

import pytest

from bench import environment
from bench.environment import (
    CASSANDRA_TEMPLATE,
    DISTRIBUTIONS,
    KAFKA_BROKER_CONFIGS,
    KAFKA_TEMPLATE,
    LONG_MAX,
    PROJECT_DISTRIBUTION,
    ROOT,
    Configs,
    Endpoints,
    Server,
    collect,
    environment_lines,
    kafka_fsync,
    kafka_version,
    parse_properties,
    unknown,
    yaml_top_level,
)
from orchestrator.backends.sqlite import MAX_BATCH


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nowhere() -> Endpoints:
    port = closed_port()
    return Endpoints(f"127.0.0.1:{port}", f"127.0.0.1:{port}", f"amqp://guest:guest@127.0.0.1:{port}/")


def test_parse_properties() -> None:
    text = "# comment\n! also a comment\n\n a.b = 1 \nlog.dirs=/x=y\nempty=\n"
    assert parse_properties(text) == {"a.b": "1", "log.dirs": "/x=y", "empty": ""}
    template = parse_properties(KAFKA_TEMPLATE.read_text())
    assert template["min.insync.replicas"] == "1"
    assert template["default.replication.factor"] == "1"
    assert "log.flush.interval.messages" not in template  # the Kafka default is in force


def test_yaml_top_level_reads_the_cassandra_template() -> None:
    values = yaml_top_level(
        CASSANDRA_TEMPLATE.read_text(), ["commitlog_sync", "commitlog_sync_period", "absent"]
    )
    assert values == {"commitlog_sync": "periodic", "commitlog_sync_period": "10000ms"}
    assert yaml_top_level('a: "x" # note\n  b: nested\n', ["a", "b"]) == {"a": "x"}


def test_kafka_fsync_reads_the_flush_settings() -> None:
    unset = Configs(dict.fromkeys(KAFKA_BROKER_CONFIGS), {})
    assert kafka_fsync(unset, "1").startswith("no fsync per message")
    served = Configs(
        {"log.flush.interval.messages": str(LONG_MAX), "log.flush.scheduler.interval.ms": str(LONG_MAX)}, {}
    )
    assert kafka_fsync(served, "3").startswith("no fsync per message")
    assert "(3 broker(s)" in kafka_fsync(served, "3")
    assert kafka_fsync(Configs({"log.flush.interval.messages": "1"}, {}), "1").startswith(
        "an fsync for every message"
    )
    tuned = Configs({"log.flush.interval.messages": "1000", "log.flush.interval.ms": "500"}, {})
    assert kafka_fsync(tuned, "1").startswith("an fsync every 1000 messages or 500 ms")


def test_unknown_is_one_short_line() -> None:
    assert unknown("no server") == "unknown (no server)"
    assert unknown(ConnectionError("refused\n  twice")) == "unknown (ConnectionError: refused twice)"
    assert unknown(TimeoutError()) == "unknown (TimeoutError)"
    assert len(unknown("x" * 1000)) < 220


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_embedded_settings_are_read_back(synchronous: str) -> None:
    env = collect(synchronous=synchronous, distributed=False, peers=False)
    versions, durability = env["versions"], env["durability"]
    assert versions["sqlite3 library"] == sqlite3.sqlite_version
    assert set(DISTRIBUTIONS) | {PROJECT_DISTRIBUTION} <= set(versions)
    assert "celery" not in versions and "Kafka broker" not in versions
    assert durability["SQLite journal_mode"]["value"] == "wal"
    assert durability["SQLite synchronous"]["value"].startswith(synchronous.upper() + ":")
    assert str(MAX_BATCH) in durability["SQLite group commit"]["value"]
    assert durability["in-process transport"]["value"].startswith("durable=False")
    assert all(set(item) == {"value", "source"} for item in durability.values())


def test_project_distribution_is_the_pyproject_name() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == PROJECT_DISTRIBUTION


def test_distributed_lookups_fail_soft_on_a_closed_port() -> None:
    began = time.monotonic()
    env = collect(synchronous="full", distributed=True, peers=True, endpoints=nowhere())
    assert time.monotonic() - began < 60
    versions, durability = env["versions"], env["durability"]
    for name in ("RabbitMQ", "Kafka broker", "Cassandra", "Java (Kafka)", "Java (Cassandra)"):
        assert versions[name].startswith("unknown ("), name
    assert durability["Kafka brokers"]["value"].startswith("unknown (")
    broker = durability["Kafka broker min.insync.replicas"]
    assert broker["value"] == "1" and broker["source"].startswith(str(KAFKA_TEMPLATE))
    assert durability["Kafka broker log.flush.interval.messages"]["value"].startswith("unset")
    assert durability["Cassandra commitlog_sync"]["source"].startswith(str(CASSANDRA_TEMPLATE))
    assert durability["Cassandra nodes"]["value"].startswith("unknown (")
    # Nothing claims to come from a server that was not reached.
    sources = " ".join(item["source"] for item in durability.values())
    assert "DescribeConfigs" not in sources
    assert all(
        "system_views" not in item["source"] or item["value"].startswith("unknown (")
        for item in durability.values()
    )
    # Client-side settings need no server.
    assert durability["Kafka producer acks"]["value"] == "all (-1)"
    assert durability["Kafka producer enable_idempotence"]["value"] == "True"
    assert durability["Kafka consumer enable_auto_commit"]["value"].startswith("False")
    assert durability["Cassandra event log serial consistency"]["value"].startswith("LOCAL_SERIAL")
    if "Celery settings" in durability:  # the bench extra is not installed
        assert durability["Celery settings"]["value"].startswith("unknown (")
    else:
        assert durability["Celery task_acks_late"]["value"] == "True"
        assert durability["DBOS system database journal_mode"]["value"] == "WAL"


def test_the_process_on_a_port_is_found_and_not_taken_for_a_jvm() -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        server = Server.on(f"127.0.0.1:{port}", 0)
        assert server.pid == os.getpid()
        assert kafka_version(server, port).startswith("unknown (no kafka_")
        assert (
            server.java_version().startswith("unknown (") and "not a java executable" in server.java_version()
        )
    assert Server.on("10.1.2.3:9092", 9092).why_not == "10.1.2.3 is not this machine"


def test_kafka_version_from_the_classpath(tmp_path: Path) -> None:
    for name in ("kafka-clients-4.4.0.jar", "kafka_2.13-4.4.0.jar", "log4j-core-2.25.5.jar"):
        (tmp_path / name).touch()
    args = ("java", "-Xmx1g", "-cp", f"{tmp_path}/*", "kafka.Kafka", "/conf/server.properties")
    version = kafka_version(Server(123, args, ""), 9092)
    assert version.startswith("4.4.0 (kafka_2.13-4.4.0.jar on the classpath of pid 123")
    cassandra = Server(7, ("java", "-Dcassandra.unsafesystem=true", "-Dcassandra.config=file:///c.yaml"), "")
    assert cassandra.system_property("cassandra.unsafesystem") == "true"
    assert cassandra.system_property("cassandra.config") == "file:///c.yaml"
    assert cassandra.system_property("absent") is None


def test_environment_lines_shape() -> None:
    env = {
        "versions": {"python": "3.11.7", "odd|name": "1"},
        "durability": {"SQLite synchronous": {"value": "FULL: a|b", "source": "PRAGMA\nread back"}},
    }
    lines = environment_lines(env)
    assert lines[0] == "### Versions and durability settings"
    assert lines[2:4] == ["| component | version |", "|---|---|"]
    assert lines[4:6] == ["| python | 3.11.7 |", "| odd\\|name | 1 |"]
    assert lines[7:9] == ["| setting | value | where it was read from |", "|---|---|---|"]
    assert lines[9] == "| SQLite synchronous | FULL: a\\|b | PRAGMA read back |"
    for line in lines[2:6] + lines[7:]:
        assert len(re.findall(r"(?<!\\)\|", line)) == (3 if line in lines[2:6] else 4)


def test_main_prints_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert environment.main(["--synchronous", "normal"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Versions and durability settings\n")
    assert "| SQLite synchronous | NORMAL:" in out


def test_claims_about_the_bench_code_hold() -> None:
    """The settings stated from code rather than read back: keep them true."""
    bench = ROOT / "bench"
    for line in (bench / "distributed.py").read_text().splitlines():
        if "kafka://" in line or "cassandra://" in line:
            assert "replication" not in line and "consistency" not in line, line
    for name in ("raw_limits.py", "trigger_parts.py"):
        code = (bench / name).read_text()
        assert "publisher_confirms=True" in code and "durable=True" in code, name
        assert "DeliveryMode.PERSISTENT" in code, name
        assert "x-queue-type" not in code, name


def test_a_failing_group_becomes_one_unknown_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> dict[str, dict[str, str]]:
        raise RuntimeError("schema changed")

    monkeypatch.setattr(environment, "embedded_settings", broken)
    monkeypatch.setattr(environment, "kafka_settings", broken)
    env = collect(synchronous="full", distributed=True, peers=False, endpoints=nowhere())
    durability = env["durability"]
    assert durability["embedded settings"]["value"] == "unknown (RuntimeError: schema changed)"
    assert durability["Kafka settings"]["value"] == "unknown (RuntimeError: schema changed)"
    assert "Cassandra commitlog_sync" in durability and "RabbitMQ messages" in durability


def test_peers_alone_ask_rabbitmq_for_its_version_only() -> None:
    env = collect(synchronous="full", distributed=False, peers=True, endpoints=nowhere())
    assert env["versions"]["RabbitMQ"].startswith("unknown (")
    assert {"celery", "kombu", "dbos"} <= set(env["versions"])
    assert not any(name.startswith(("RabbitMQ", "Kafka", "Cassandra")) for name in env["durability"])
