"""The WaitIndex contract: each backend's test subclasses WaitIndexContract to say how to build it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.ports import WaitIndex


class WaitIndexContract(ABC):
    @abstractmethod
    async def make_waits(self, tmp_path: Path) -> WaitIndex:
        """A started wait index; durable backends open the same data when called again."""

    @pytest.fixture
    async def waits(self, tmp_path: Path) -> AsyncIterator[WaitIndex]:
        waits = await self.make_waits(tmp_path)
        try:
            yield waits
        finally:
            await waits.stop()

    async def test_nobody_waits_on_an_unknown_key(self, waits: WaitIndex) -> None:
        assert await waits.waiting(("paid", "order-1")) == []
        assert await waits.waiting(("paid", None)) == []

    async def test_executions_wait_with_and_without_a_correlation_key(self, waits: WaitIndex) -> None:
        await waits.update("x2", set(), {("paid", "order-1")})
        await waits.update("x1", set(), {("paid", "order-1"), ("approved", None)})
        await waits.update("x3", set(), {("paid", "order-2"), ("approved", None)})

        assert await waits.waiting(("paid", "order-1")) == ["x1", "x2"]
        assert await waits.waiting(("paid", "order-2")) == ["x3"]
        assert await waits.waiting(("approved", None)) == ["x1", "x3"]
        assert await waits.waiting(("approved", "order-1")) == []
        assert await waits.waiting(("shipped", "order-1")) == []

    async def test_removing_a_key_leaves_the_other_waiters(self, waits: WaitIndex) -> None:
        await waits.update("x1", set(), {("paid", "k"), ("approved", None)})
        await waits.update("x2", set(), {("paid", "k")})

        await waits.update("x1", {("paid", "k")}, set())

        assert await waits.waiting(("paid", "k")) == ["x2"]
        assert await waits.waiting(("approved", None)) == ["x1"]
        await waits.update("x2", {("paid", "k")}, set())
        await waits.update("x9", {("paid", "k"), ("never", None)}, set())  # not waiting: harmless
        assert await waits.waiting(("paid", "k")) == []

    async def test_one_update_moves_an_execution_from_one_key_to_another(self, waits: WaitIndex) -> None:
        await waits.update("x1", set(), {("paid", "a")})
        await waits.update("x1", {("paid", "a")}, {("paid", "b"), ("refund", "a")})

        assert await waits.waiting(("paid", "a")) == []
        assert await waits.waiting(("paid", "b")) == ["x1"]
        assert await waits.waiting(("refund", "a")) == ["x1"]

    async def test_adding_twice_is_idempotent(self, waits: WaitIndex) -> None:
        await waits.update("x1", set(), {("paid", "a")})
        await waits.update("x1", set(), {("paid", "a")})
        assert await waits.waiting(("paid", "a")) == ["x1"]
        await waits.update("x1", {("paid", "a")}, set())
        assert await waits.waiting(("paid", "a")) == []

    async def test_no_key_and_an_empty_key_are_different_keys(self, waits: WaitIndex) -> None:
        await waits.update("none", set(), {("paid", None)})
        await waits.update("empty", set(), {("paid", "")})
        await waits.update("nul", set(), {("paid", "\0")})

        assert await waits.waiting(("paid", None)) == ["none"]
        assert await waits.waiting(("paid", "")) == ["empty"]
        assert await waits.waiting(("paid", "\0")) == ["nul"]

    async def test_many_executions_on_one_key(self, waits: WaitIndex) -> None:
        ids = [f"x{n:04}" for n in range(250)]
        for execution_id in ids:
            await waits.update(execution_id, set(), {("tick", "all")})
        assert await waits.waiting(("tick", "all")) == ids
