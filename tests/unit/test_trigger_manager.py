"""The trigger manager over fake sources: start, stop, version takeover, overrides, failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestrator.backends.kafka.transport import KafkaTransport
from orchestrator.ports import UnknownWorkflow
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.definition import WorkflowDefinition
from tests.fake_sources import Fakes, FakeSource, eventually
from triggers.manager import TriggerManager, UnknownTrigger, runs_sources_here
from triggers.sources import SourceSpec, SourceStats

IMPORTED: list[str] = []


class ImportedSource:
    """Reached through a ``"module:Class"`` entry of the factory table."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.stats = SourceStats()

    async def start(self) -> None:
        IMPORTED.append(f"start {self.spec.trigger.name}")

    async def stop(self) -> None:
        IMPORTED.append(f"stop {self.spec.trigger.name}")


def workflow(name: str, *triggers: dict[str, Any], description: str = "") -> WorkflowDefinition:
    return WorkflowDefinition.model_validate(
        {
            "name": name,
            "description": description,
            "triggers": list(triggers),
            "steps": [{"name": "done", "type": "succeed"}],
        }
    )


def kafka(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "kafka", "name": name, "topics": [f"{name}-topic"], **extra}


def amqp(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "amqp", "name": name, "queue": f"{name}-queue", **extra}


def window(name: str) -> dict[str, Any]:
    return {"type": "kafka_window", "name": name, "topics": ["logins"], "key": "data.user",
            "window_seconds": 60, "threshold": 5}  # fmt: skip


def webhook(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "name": name, **extra}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    async with Runtime(Settings(event_log_url="memory://", retention_interval=0)) as runtime:
        yield runtime


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


def manager_for(runtime: Runtime, fakes: Fakes, **options: Any) -> TriggerManager:
    table = {"kafka": fakes, "amqp": fakes, "kafka_window": fakes}
    return TriggerManager(runtime, factories=table, **{"poll_interval": 60.0, **options})


# -- start and stop ----------------------------------------------------------------------


async def test_runs_the_enabled_queue_triggers_of_the_latest_versions(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("old")))
    await runtime.register(workflow("orders", kafka("paid"), amqp("refunds"), webhook("hook")))
    await runtime.register(workflow("alerts", window("brute"), kafka("off", enabled=False)))

    async with manager_for(runtime, fakes):
        assert fakes.versions() == {("orders", "paid"): 2, ("orders", "refunds"): 2, ("alerts", "brute"): 1}
        spec = next(s for s in fakes.specs if s.trigger.name == "paid")
        assert (spec.workflow, spec.version, spec.runtime, spec.settings) == (
            "orders", 2, runtime, runtime.settings,
        )  # fmt: skip
        assert spec.trigger.topics == ["paid-topic"]

    assert fakes.running == {}
    assert sorted(e for e in fakes.journal if e[0] == "stop") == [
        ("stop", "alerts", "brute", 1), ("stop", "orders", "paid", 2), ("stop", "orders", "refunds", 2),
    ]  # fmt: skip
    assert runtime.definition_observers == []


async def test_sources_come_from_module_class_entries_imported_on_use(runtime: Runtime) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    table = {"kafka": f"{__name__}:ImportedSource"}
    IMPORTED.clear()

    async with TriggerManager(runtime, factories=table, poll_interval=60):
        assert IMPORTED == ["start paid"]

    assert IMPORTED == ["start paid", "stop paid"]


async def test_the_default_table_names_the_three_source_modules(runtime: Runtime) -> None:
    manager = TriggerManager(runtime)
    assert manager.factories == {
        "kafka": "triggers.kafka_source:KafkaTriggerSource",
        "amqp": "triggers.amqp_source:AmqpTriggerSource",
        "kafka_window": "triggers.window_source:WindowTriggerSource",
    }
    assert manager.poll_interval == runtime.settings.trigger_poll_interval == 5.0


# -- version takeover ----------------------------------------------------------------------


async def test_a_new_version_hands_each_trigger_over_stop_before_start(
    runtime: Runtime, fakes: Fakes
) -> None:
    await runtime.register(workflow("orders", kafka("paid"), amqp("refunds"), kafka("gone")))
    async with manager_for(runtime, fakes):
        fakes.journal.clear()

        await runtime.register(
            workflow("orders", kafka("paid", filter="data.ok"), amqp("refunds"), kafka("new"))
        )
        await eventually(lambda: fakes.versions().get(("orders", "new")) == 2)  # the observer, no poll

        assert fakes.versions() == {("orders", "paid"): 2, ("orders", "refunds"): 2, ("orders", "new"): 2}
        for name in ("paid", "refunds"):
            mine = [e for e in fakes.journal if e[2] == name]
            assert mine == [("stop", "orders", name, 1), ("start", "orders", name, 2)]
        assert [e for e in fakes.journal if e[2] == "gone"] == [("stop", "orders", "gone", 1)]
        assert [e for e in fakes.journal if e[2] == "new"] == [("start", "orders", "new", 2)]
        paid = fakes.running[("orders", "paid")].spec.trigger
        assert paid.filter == "data.ok"


async def test_a_version_registered_by_another_process_is_taken_over_on_the_poll(
    runtime: Runtime, fakes: Fakes
) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    async with manager_for(runtime, fakes, poll_interval=0.05):
        await runtime.registry.register(workflow("orders", kafka("paid"), description="v2"))  # no observer

        await eventually(lambda: fakes.versions() == {("orders", "paid"): 2})
        assert fakes.journal[-2:] == [("stop", "orders", "paid", 1), ("start", "orders", "paid", 2)]


async def test_an_unchanged_registration_restarts_nothing(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    async with manager_for(runtime, fakes) as manager:
        await runtime.register(workflow("orders", kafka("paid")))  # same content: still v1
        await manager.sync()
        await manager.sync()

        assert fakes.journal == [("start", "orders", "paid", 1)]


# -- enable and disable --------------------------------------------------------------------


async def test_disable_and_enable_persist_and_apply_here_at_once(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid"), amqp("refunds")))
    async with manager_for(runtime, fakes) as manager:
        view = await manager.set_enabled("orders", "paid", False)

        assert (view.enabled, view.override, view.running) == (False, False, False)
        assert ("orders", "paid") not in fakes.running and ("orders", "refunds") in fakes.running
        assert await runtime.registry.trigger_states() == {("orders", "paid"): False}

        view = await manager.set_enabled("orders", "paid", True)

        assert (view.enabled, view.override, view.running, view.running_version) == (True, True, True, 1)
        assert fakes.journal[-2:] == [("stop", "orders", "paid", 1), ("start", "orders", "paid", 1)]


async def test_an_override_enables_a_trigger_the_definition_disables(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid", enabled=False)))
    async with manager_for(runtime, fakes) as manager:
        assert fakes.running == {}

        await manager.set_enabled("orders", "paid", True)

        assert fakes.versions() == {("orders", "paid"): 1}


async def test_overrides_from_other_processes_apply_on_the_poll(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    async with manager_for(runtime, fakes, poll_interval=0.05) as manager:
        await runtime.registry.set_trigger_enabled("orders", "paid", False)  # as another process would

        await eventually(lambda: fakes.running == {})
        assert manager.overrides == {("orders", "paid"): False}

        await runtime.registry.set_trigger_enabled("orders", "paid", True)
        await eventually(lambda: ("orders", "paid") in fakes.running)


async def test_overrides_hold_for_the_next_version(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    async with manager_for(runtime, fakes) as manager:
        await manager.set_enabled("orders", "paid", False)

        await runtime.register(workflow("orders", kafka("paid"), description="v2"))
        await manager.sync()

        assert fakes.running == {}
        assert (await manager.view("orders", "paid")).version == 2


async def test_unknown_workflows_and_triggers_are_refused(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    async with manager_for(runtime, fakes) as manager:
        with pytest.raises(UnknownWorkflow):
            await manager.set_enabled("nope", "paid", False)
        with pytest.raises(UnknownTrigger, match="'nope'"):
            await manager.set_enabled("orders", "nope", False)
        assert await runtime.registry.trigger_states() == {}


# -- failures -------------------------------------------------------------------------------


async def test_a_failing_source_is_shown_logged_once_and_retried(
    runtime: Runtime, fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.fail["paid"] = "broker unreachable"
    await runtime.register(workflow("orders", kafka("paid"), amqp("refunds")))
    caplog.set_level(logging.ERROR, logger="triggers.manager")
    async with manager_for(runtime, fakes) as manager:
        assert list(fakes.running) == [("orders", "refunds")]  # the others run
        await manager.sync()
        await manager.sync()

        view = await manager.view("orders", "paid")
        assert not view.running and view.stats is None
        assert view.error == "cannot start: ConnectionError: broker unreachable"
        errors = [r.getMessage() for r in caplog.records if "orders/paid" in r.getMessage()]
        assert len(errors) == 1 and "broker unreachable" in errors[0]

        del fakes.fail["paid"]
        await manager.sync()

        view = await manager.view("orders", "paid")
        assert (view.running, view.error, view.stats and view.stats["received"]) == (True, None, 7)


async def test_a_source_that_cannot_be_created_or_does_not_start_in_time(
    runtime: Runtime, fakes: Fakes
) -> None:
    await runtime.register(workflow("orders", kafka("paid"), amqp("slow")))
    fakes.hang.add("slow")
    table = {"kafka": "no_such_module_here:Source", "amqp": fakes}
    async with TriggerManager(runtime, factories=table, poll_interval=60, start_timeout=0.1) as manager:
        views = {v.name: v for v in await manager.views()}

    assert views["paid"].error is not None and "cannot create the kafka source" in views["paid"].error
    assert "no_such_module_here" in views["paid"].error
    assert views["slow"].error == "cannot start: did not start within 0.1s"
    assert not views["paid"].running and not views["slow"].running


async def test_an_unknown_connection_is_an_error_not_a_crash(runtime: Runtime) -> None:
    def needs_connection(spec: SourceSpec) -> FakeSource:
        spec.settings.connection(spec.trigger.connection)  # raises SettingsError
        raise AssertionError("unreachable")

    await runtime.register(workflow("orders", kafka("paid", connection="nowhere")))
    async with TriggerManager(runtime, factories={"kafka": needs_connection}, poll_interval=60) as manager:
        (view,) = await manager.views()

    assert view.error is not None and "connection 'nowhere' is not configured" in view.error
    assert "ORCHESTRATOR_CONNECTION_NOWHERE" in view.error


async def test_the_poll_survives_a_failing_registry(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    calls = 0
    real = runtime.registry.trigger_states

    async def flaky() -> dict[tuple[str, str], bool]:
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            raise ConnectionError("registry down")
        return await real()

    runtime.registry.trigger_states = flaky  # type: ignore[method-assign]
    async with manager_for(runtime, fakes, poll_interval=0.02):
        await runtime.registry.set_trigger_enabled("orders", "paid", False)
        await eventually(lambda: fakes.running == {})

    assert calls >= 4


# -- where sources run, and the listing -----------------------------------------------------


async def test_api_only_processes_list_and_change_but_run_nothing(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid"), webhook("hook")))
    async with manager_for(runtime, fakes, run_sources=False) as manager:
        view = await manager.set_enabled("orders", "hook", False)
        views = {v.name: v for v in await manager.views()}

    assert fakes.specs == []
    assert (views["paid"].enabled, views["paid"].running) == (True, False)
    assert (view.enabled, view.running) == (False, False)
    assert await runtime.registry.trigger_states() == {("orders", "hook"): False}


def test_sources_run_wherever_workers_run() -> None:
    class Fake:
        def __init__(self, transport: Any) -> None:
            self.transport = transport

    api = KafkaTransport.from_url("kafka://127.0.0.1:9092?role=api")
    worker = KafkaTransport.from_url("kafka://127.0.0.1:9092")
    assert runs_sources_here(Fake(api)) is False  # type: ignore[arg-type]
    assert runs_sources_here(Fake(worker)) is True  # type: ignore[arg-type]
    assert runs_sources_here(Fake(object())) is True  # type: ignore[arg-type]


async def test_views_describe_every_trigger_of_the_latest_versions(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(
        workflow(
            "orders",
            kafka("paid", group="billing", correlation={"event": "paid", "key": "data.id"}),
            kafka("plain"),
            amqp("refunds", exchange="shop", binding_key="refund.*"),
            webhook("hook", signature={"preset": "github", "secret": "GH"}),
            window("brute"),
        )
    )
    async with manager_for(runtime, fakes) as manager:
        views = {v.name: v.to_dict() for v in await manager.views()}

    assert views["paid"]["details"] == {
        "connection": "kafka", "topics": ["paid-topic"], "group": "billing", "start_from": "latest",
        "dead_letter_topic": "paid-topic.dlq", "delivers_event": "paid",
    }  # fmt: skip
    assert views["plain"]["details"]["group"] == "orchestrator.orders.plain"
    assert views["refunds"]["details"] == {
        "connection": "amqp", "queue": "refunds-queue", "exchange": "shop", "binding_key": "refund.*",
        "dead_letter_exchange": "refunds-queue.dlx",
    }  # fmt: skip
    assert views["hook"]["details"] == {"path": "/hooks/hook", "signed": True, "preset": "github"}
    assert views["brute"]["details"]["group"] == "orchestrator.orders.brute"
    assert views["hook"]["running"] is True and views["hook"]["stats"] is None
    paid = views["paid"]
    assert (paid["workflow"], paid["version"], paid["type"], paid["enabled"], paid["running"]) == (
        "orders", 1, "kafka", True, True,
    )  # fmt: skip
    assert paid["stats"]["received"] == 7 and paid["error"] is None and paid["override"] is None


async def test_a_slow_start_holds_up_no_other_trigger(runtime: Runtime, fakes: Fakes) -> None:
    await runtime.register(workflow("orders", kafka("paid")))
    fakes.hang.add("slow")
    async with manager_for(runtime, fakes, start_timeout=30) as manager:
        await runtime.register(workflow("slowpoke", amqp("slow")))  # the poller now waits on it
        await eventually(lambda: any(s.trigger.name == "slow" for s in fakes.specs))

        loop = asyncio.get_running_loop()
        began = loop.time()
        view = await manager.set_enabled("orders", "paid", False)

        assert loop.time() - began < 1.0
        assert view.running is False and ("orders", "paid") not in fakes.running
    assert fakes.running == {}  # stopping abandoned the hanging start
