"""The Registry contract: each backend's test subclasses RegistryContract to say how to build it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.ports import NameTaken, Registry, UnknownWorkflow, VersionConflict
from schemas.definition import (
    ChoiceRule,
    ChoiceStep,
    RetryPolicy,
    SucceedStep,
    TaskStep,
    WaitStep,
    WebhookTrigger,
    WorkflowDefinition,
)
from tests.contracts.factories import definition


def rich_definition() -> WorkflowDefinition:
    """A definition using nested models, defaults and unicode, to check a faithful round trip."""
    return WorkflowDefinition(
        name="rich",
        description="Ünïcode ✓",
        input_schema={"type": "object", "required": ["id"]},
        triggers=[WebhookTrigger(name="hook", idempotency_header="X-Delivery")],
        steps=[
            TaskStep(
                name="fetch",
                connector="http",
                config={"url": "https://example.test", "headers": {"a": "b"}},
                input={"id": "input.id"},
                retry=RetryPolicy(max_attempts=3, retry_on=["Timeout*"]),
                next="route",
            ),
            ChoiceStep(
                name="route",
                choices=[ChoiceRule(when="steps.fetch.ok", next="done")],
                default="pause",
            ),
            WaitStep(name="pause", seconds=1.5, next="done"),
            SucceedStep(name="done", output="steps.fetch"),
        ],
    )


class RegistryContract(ABC):
    @abstractmethod
    async def make_registry(self, tmp_path: Path) -> Registry:
        """A started registry; durable backends open the same data when called again."""

    @pytest.fixture
    async def registry(self, tmp_path: Path) -> AsyncIterator[Registry]:
        registry = await self.make_registry(tmp_path)
        try:
            yield registry
        finally:
            await registry.stop()

    async def test_versions_are_assigned_in_order(self, registry: Registry) -> None:
        first = await registry.register(definition(url="https://a"))
        second = await registry.register(definition(url="https://b"))

        assert (first.version, second.version) == (1, 2)
        assert first == definition(url="https://a", version=1)
        assert await registry.versions("orders") == [1, 2]
        assert await registry.get("orders") == second
        assert await registry.get("orders", 1) == first

    async def test_same_content_as_latest_is_not_a_new_version(self, registry: Registry) -> None:
        await registry.register(definition(url="https://a"))
        latest = await registry.register(definition(url="https://b"))

        again = await registry.register(definition(url="https://b"))

        assert again == latest
        assert await registry.versions("orders") == [1, 2]

    async def test_content_of_an_older_version_becomes_the_next_version(
        self, registry: Registry
    ) -> None:
        await registry.register(definition(url="https://a"))
        await registry.register(definition(url="https://b"))

        back = await registry.register(definition(url="https://a"))

        assert back == definition(url="https://a", version=3)
        assert await registry.versions("orders") == [1, 2, 3]

    async def test_a_version_is_immutable(self, registry: Registry) -> None:
        original = await registry.register(definition(version=1, url="https://a"))

        with pytest.raises(VersionConflict):
            await registry.register(definition(version=1, url="https://changed"))

        assert await registry.get("orders", 1) == original
        assert await registry.versions("orders") == [1]

    async def test_registering_the_same_version_again_is_idempotent(
        self, registry: Registry
    ) -> None:
        first = await registry.register(definition(version=1, url="https://a"))
        await registry.register(definition(version=2, url="https://b"))

        again = await registry.register(definition(version=1, url="https://a"))

        assert again == first
        assert await registry.versions("orders") == [1, 2]

    async def test_explicit_versions_may_skip_and_auto_versions_follow_the_highest(
        self, registry: Registry
    ) -> None:
        await registry.register(definition(version=5, url="https://five"))
        await registry.register(definition(version=2, url="https://two"))

        auto = await registry.register(definition(url="https://next"))

        assert auto.version == 6
        assert await registry.versions("orders") == [2, 5, 6]
        assert (await registry.get("orders")).version == 6

    async def test_unknown_names_and_versions(self, registry: Registry) -> None:
        await registry.register(definition())

        with pytest.raises(UnknownWorkflow, match="nope"):
            await registry.get("nope")
        with pytest.raises(UnknownWorkflow, match="nope"):
            await registry.get("nope", 1)
        with pytest.raises(UnknownWorkflow, match="2"):
            await registry.get("orders", 2)
        assert await registry.versions("nope") == []

    async def test_list_gives_the_latest_of_each_workflow_by_name(self, registry: Registry) -> None:
        assert await registry.list() == []
        for name, url in [
            ("zeta", "a"),
            ("alpha", "a"),
            ("zeta", "b"),
            ("mid", "a"),
            ("alpha", "b"),
        ]:
            await registry.register(definition(name, url=f"https://{url}"))
        await registry.register(definition("alpha", url="https://a", version=1))  # no-op

        listed = await registry.list()

        assert [(d.name, d.version) for d in listed] == [("alpha", 2), ("mid", 1), ("zeta", 2)]
        assert listed[0] == definition("alpha", url="https://b", version=2)

    async def test_definitions_round_trip_faithfully(self, registry: Registry) -> None:
        stored = await registry.register(rich_definition())

        assert stored == rich_definition().with_version(1)
        assert await registry.get("rich") == stored
        assert await registry.get("rich", 1) == stored
        assert await registry.list() == [stored]
        assert await registry.register(rich_definition()) == stored

    async def test_a_definition_keeps_its_tenant_and_defaults_to_the_default_one(self, registry: Registry) -> None:
        plain = await registry.register(definition("plain"))
        owned = await registry.register(definition("owned").model_copy(update={"tenant": "acme"}))

        assert (plain.tenant, owned.tenant) == ("default", "acme")
        assert (await registry.get("owned")).tenant == "acme"
        assert (await registry.get("owned", 1)).tenant == "acme"
        assert {d.name: d.tenant for d in await registry.list()} == {"owned": "acme", "plain": "default"}

    async def test_a_name_belongs_to_the_tenant_that_registered_it_first(self, registry: Registry) -> None:
        mine = definition(url="https://a").model_copy(update={"tenant": "acme"})
        await registry.register(mine)
        theirs = definition(url="https://b").model_copy(update={"tenant": "globex"})

        for attempt in (theirs, theirs.with_version(2), theirs.with_version(1), mine.model_copy(update={"tenant": "default"})):
            with pytest.raises(NameTaken) as refused:
                await registry.register(attempt)
            assert "acme" not in str(refused.value)  # the owner is not revealed
        assert await registry.versions("orders") == [1]
        assert (await registry.register(definition(url="https://b").model_copy(update={"tenant": "acme"}))).version == 2
        assert {d.tenant for d in [await registry.get("orders", v) for v in (1, 2)]} == {"acme"}

    async def test_no_trigger_overrides_at_first(self, registry: Registry) -> None:
        await registry.register(rich_definition())

        assert await registry.trigger_states() == {}

    async def test_trigger_overrides_are_kept_per_workflow_and_trigger_and_the_last_wins(
        self, registry: Registry
    ) -> None:
        await registry.set_trigger_enabled("orders", "paid", False)
        await registry.set_trigger_enabled("orders", "refunds", True)
        await registry.set_trigger_enabled("billing", "paid", False)
        await registry.set_trigger_enabled("orders", "paid", True)
        await registry.set_trigger_enabled("billing", "paid", False)  # the same again: no-op

        assert await registry.trigger_states() == {
            ("orders", "paid"): True,
            ("orders", "refunds"): True,
            ("billing", "paid"): False,
        }

    async def test_trigger_overrides_hold_across_versions(self, registry: Registry) -> None:
        await registry.register(definition(url="https://a"))
        await registry.set_trigger_enabled("orders", "hook", False)

        await registry.register(definition(url="https://b"))

        assert await registry.trigger_states() == {("orders", "hook"): False}
        assert await registry.versions("orders") == [1, 2]

    async def test_trigger_states_are_a_copy(self, registry: Registry) -> None:
        await registry.set_trigger_enabled("orders", "hook", False)

        states = await registry.trigger_states()
        states[("orders", "hook")] = True

        assert await registry.trigger_states() == {("orders", "hook"): False}
