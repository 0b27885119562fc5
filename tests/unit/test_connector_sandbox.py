"""Connector sandboxing: the python allow-list (at registration and at every call) and the
publishers' refusal of the orchestrator's internal topics, exchanges and queues."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.amqp_publish import AmqpPublishConnector, build_message
from connectors.base import Connectors
from connectors.defaults import default_connectors
from connectors.kafka_publish import KafkaPublishConnector, build_record
from connectors.publishing import internal_topics
from connectors.python import AllowList, PythonConnector
from orchestrator.ports import ConnectorError, StepCall
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import DefinitionError, parse_definition

FUNCS = "tests.unit.python_funcs"


def call(config: dict[str, Any], args: Any = None) -> StepCall:
    return StepCall("e", "wf", "s", 1, "e:s:1", config=config, args={} if args is None else args)


async def refused(connector: PythonConnector, function: str) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        await connector.invoke(call({"function": function}, {"a": 1, "b": 2}))
    assert (info.value.type, info.value.retryable) == ("python.forbidden", False)
    return info.value


async def test_nothing_may_be_called_by_default() -> None:
    async with PythonConnector() as connector:
        error = await refused(connector, "subprocess:getoutput")
        assert "ORCHESTRATOR_PYTHON_ALLOW" in error.message
        await refused(connector, f"{FUNCS}:add")


async def test_isolated_calls_are_refused_before_any_child_runs_them() -> None:
    async with PythonConnector(isolation="process") as connector:
        await refused(connector, "subprocess:getoutput")  # checked in this process, first


async def test_allowed_prefixes_and_functions_pass_and_nothing_else() -> None:
    async with PythonConnector(allow=["tests.unit"]) as connector:
        assert await connector.invoke(call({"function": f"{FUNCS}:add"}, {"a": 1, "b": 2})) == 3
        await refused(connector, "tests.unitx:add")  # a prefix is a whole module name
        await refused(connector, "os:system")
    async with PythonConnector(allow=[f"{FUNCS}:add"]) as one:
        assert await one.invoke(call({"function": f"{FUNCS}:add"}, {"a": 1, "b": 2})) == 3
        await refused(one, f"{FUNCS}:echo")


async def test_functions_reached_through_an_allowed_module_are_judged_where_defined() -> None:
    async with PythonConnector(allow=[FUNCS]) as connector:
        error = await refused(connector, f"{FUNCS}:asyncio.sleep")  # python_funcs imports asyncio
        assert "defined in module 'asyncio" in error.message
        await refused(connector, f"{FUNCS}:add.__call__")


def test_allow_list_rules() -> None:
    allow = AllowList(["examples", "pkg.mod:f", " "])
    assert allow.problem("examples.orders:ship") is None and allow.problem("examples:x") is None
    assert allow.problem("pkg.mod:f") is None
    assert allow.problem("pkg.mod:g") is not None and allow.problem("pkg:f") is not None
    assert allow.problem("examples.orders:_private") is not None


async def test_registration_names_the_violation() -> None:
    definition = parse_definition(
        {"name": "evil", "steps": [{"name": "run", "type": "task", "connector": "python",
                                     "config": {"function": "subprocess:getoutput"}}]}
    )
    async with Runtime(Settings(event_log_url="memory://")) as runtime:
        with pytest.raises(DefinitionError) as info:
            await runtime.register(definition)
    [problem] = info.value.problems
    assert problem.location == "steps[0].config" and "'subprocess:getoutput'" in problem.message
    allowed = Settings(event_log_url="memory://", python_allow=("subprocess",))
    async with Runtime(allowed) as runtime:
        assert (await runtime.register(definition)).version == 1


@pytest.mark.parametrize(
    "topic", ["orchestrator.commands", "orchestrator.tasks", "orchestrator.commands.dead", "orchestrator.transitions",
              "orchestrator.orders.burst-hits", "__consumer_offsets"]
)
def test_kafka_publish_refuses_internal_topics(topic: str) -> None:
    with pytest.raises(ConnectorError) as info:
        build_record(call({"topic": topic}, {"value": 1}))
    assert (info.value.type, info.value.retryable) == ("kafka.internal", False)
    assert build_record(call({"topic": "orders.events"}, {"value": 1})).topic == "orders.events"


def test_renamed_transport_topics_are_internal_too() -> None:
    settings = Settings(
        transport_url="kafka://h:9092?commands=cmds&tasks=work",
        transitions_url="kafka://h:9092?topic=audit-feed",
    )
    assert internal_topics(settings) == {"cmds", "work", "cmds.dead", "audit-feed"}
    with pytest.raises(ConnectorError, match="internal"):
        build_record(call({"topic": "work"}, {"value": 1}), internal_topics(settings))
    connector = KafkaPublishConnector(settings)
    assert connector.step_problems({"topic": "cmds"}) and not connector.step_problems({"topic": "orders"})


@pytest.mark.parametrize(
    ("config", "args"),
    [
        ({"exchange": "amq.rabbitmq.trace"}, {"body": 1}),
        ({"exchange": "orders.dlx"}, {"body": 1}),
        ({"routing_key": "orders.dead"}, {"body": 1}),
        ({}, {"body": 1, "routing_key": "orders.dead"}),  # the arguments may not route there either
    ],
)
def test_amqp_publish_refuses_internal_exchanges_and_queues(config: dict[str, Any], args: Any) -> None:
    with pytest.raises(ConnectorError) as info:
        build_message(call(config, args))
    assert (info.value.type, info.value.retryable) == ("amqp.internal", False)
    assert build_message(call({"exchange": "orders"}, {"body": 1})).exchange == "orders"


async def test_registration_refuses_internal_destinations() -> None:
    steps = [
        {"name": "k", "type": "task", "connector": "kafka.publish", "config": {"topic": "orchestrator.commands"},
         "next": "a"},
        {"name": "a", "type": "task", "connector": "amqp.publish", "config": {"exchange": "orders.dlx"}},
    ]
    async with Runtime(Settings(event_log_url="memory://")) as runtime:
        with pytest.raises(DefinitionError) as info:
            await runtime.register(parse_definition({"name": "forge", "steps": steps}))
    assert [p.location for p in info.value.problems] == ["steps[0].config", "steps[1].config"]
    assert AmqpPublishConnector().step_problems({"exchange": "orders"}) == []


def test_the_default_set_takes_its_allow_lists_from_settings() -> None:
    connectors: Connectors = default_connectors(1, Settings(python_allow=("examples",), http_allow=("10.0.0.0/8",)))
    assert connectors.step_problems("python", {"function": "examples.orders:ship"}) == []
    assert connectors.step_problems("python", {"function": "os:system"})
    assert connectors.step_problems("http", {"url": "http://10.1.1.1/"}) == []
    assert connectors.step_problems("http", {"url": "http://127.0.0.1/"})
    assert connectors.step_problems("noop", {}) == []


def test_the_scan_judges_python_steps_by_the_same_allow_list() -> None:
    from orchestrator.cli.scan import policy
    from orchestrator.scan.definitions import scan_definition

    steps = [{"name": "run", "type": "task", "connector": "python", "config": {"function": "examples.orders:ship"}}]
    definition = parse_definition({"name": "w", "steps": steps})

    def kinds(settings: Settings) -> list[str]:
        return [finding.rule for finding in scan_definition(definition, policy(settings))]

    assert "python-outside-allow-list" in kinds(Settings())  # nothing is allowed by default
    assert "python-outside-allow-list" not in kinds(Settings(python_allow=("examples",)))
    assert "python-outside-allow-list" not in kinds(Settings(python_allow=("examples.orders:ship",)))
    assert "python-outside-allow-list" in kinds(Settings(python_allow=("examples.orders:other",)))
