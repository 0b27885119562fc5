"""docker-compose.yml lists exactly what the code reads: variables, URLs, topics, ports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from orchestrator.backends.cassandra.schema import CassandraSettings
from orchestrator.backends.kafka.client import KafkaOptions
from orchestrator.cli.main import build_parser
from orchestrator.settings import VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES_SCRIPT = (ROOT / "scripts" / "services").read_text()
ORCHESTRATOR_SERVICES = ("migrate", "api", "worker")


def environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in COMPOSE["services"][service].get("environment", {}).items()}


def script_default(name: str) -> int:
    match = re.search(rf"^{name}=\$\{{{name}:-(\d+)\}}", SERVICES_SCRIPT, flags=re.MULTILINE)
    assert match, f"scripts/services has no default for {name}"
    return int(match.group(1))


def published(service: str) -> set[int]:
    return {int(str(p).split(":")[0]) for p in COMPOSE["services"][service].get("ports", [])}


def test_every_variable_is_one_the_code_reads() -> None:
    known = {name for name in VARIABLES if "<" not in name}
    for service in ORCHESTRATOR_SERVICES:
        for name in environment(service):
            assert name in known or name.startswith("ORCHESTRATOR_SECRET_"), (service, name)


def test_settings_parse_every_service_environment() -> None:
    for service in ORCHESTRATOR_SERVICES:
        settings = Settings.from_env(environment(service))
        cassandra = CassandraSettings.from_url(settings.event_log_url)
        assert cassandra.keyspace == "orchestrator" and cassandra.port == script_default("CASSANDRA_PORT")
        kafka = KafkaOptions.from_url(settings.transport_url)
        defaults = KafkaOptions(bootstrap=("x",))
        assert (kafka.commands, kafka.tasks, kafka.group) == (defaults.commands, defaults.tasks, defaults.group)
        assert kafka.bootstrap == (f"kafka:{script_default('KAFKA_PORT')}",)
        assert settings.secret("GITHUB_WEBHOOK") is not None
        for path in settings.definitions:
            assert (ROOT / path.removeprefix("/app/")).is_file(), path


def test_the_api_only_produces_and_the_workers_consume() -> None:
    api = KafkaOptions.from_url(Settings.from_env(environment("api")).transport_url)
    worker = KafkaOptions.from_url(Settings.from_env(environment("worker")).transport_url)
    assert (api.role, worker.role) == ("api", "all")
    assert Settings.from_env(environment("api")).port == 8080 and published("api") == {8080}


def test_commands_exist_and_ports_match_the_services_script() -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for service in ORCHESTRATOR_SERVICES:
        assert COMPOSE["services"][service]["command"][0] in commands
    assert published("kafka") == {script_default("KAFKA_PORT")}
    assert published("cassandra") == {script_default("CASSANDRA_PORT")}
    assert published("rabbitmq") == {script_default("RABBITMQ_PORT"), script_default("RABBITMQ_MANAGEMENT_PORT")}
    assert set(COMPOSE["services"]) == {"kafka", "cassandra", "rabbitmq", *ORCHESTRATOR_SERVICES}
