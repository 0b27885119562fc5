"""The ScheduleStates contract: each backend's test subclasses it to say how to build two handles
on one store (two processes sharing a database)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from pathlib import Path

from orchestrator.ports import ScheduleStates


class ScheduleStatesContract(ABC):
    @abstractmethod
    async def make_states(self, tmp_path: Path) -> tuple[ScheduleStates, ScheduleStates]:
        """Two started handles on the same (empty) store; both are stopped by the test."""

    async def test_a_new_key_is_version_zero_and_empty(self, tmp_path: Path) -> None:
        first, second = await self.make_states(tmp_path)
        try:
            record = await first.load("default/orders/nightly")
            assert (record.version, record.body) == (0, {})
        finally:
            await first.stop()
            await second.stop()

    async def test_save_then_load_round_trips_and_counts_versions(self, tmp_path: Path) -> None:
        first, second = await self.make_states(tmp_path)
        try:
            body = {"cursor": 1.5, "paused": True, "note": "Ünïcode ✓", "pending": [{"t": 2.0}]}
            assert await first.save("k", 0, body)
            assert (await second.load("k")).version == 1
            assert (await second.load("k")).body == body
            assert await second.save("k", 1, {"cursor": 3.0})
            record = await first.load("k")
            assert (record.version, record.body) == (2, {"cursor": 3.0})
            assert (await first.load("other")).version == 0  # keys are independent
        finally:
            await first.stop()
            await second.stop()

    async def test_a_stale_version_is_refused_and_writes_nothing(self, tmp_path: Path) -> None:
        first, second = await self.make_states(tmp_path)
        try:
            assert await first.save("k", 0, {"by": "first"})
            assert not await second.save("k", 0, {"by": "second"})  # the insert of version 1 lost
            assert await second.save("k", 1, {"by": "second"})
            assert not await first.save("k", 1, {"by": "first again"})
            assert not await first.save("k", 5, {"by": "from the future"})
            record = await first.load("k")
            assert (record.version, record.body) == (2, {"by": "second"})
        finally:
            await first.stop()
            await second.stop()

    async def test_of_concurrent_saves_of_one_version_exactly_one_wins(self, tmp_path: Path) -> None:
        first, second = await self.make_states(tmp_path)
        try:
            for expected in range(5):
                outcomes = await asyncio.gather(
                    *(
                        handle.save("race", expected, {"writer": index, "round": expected})
                        for index, handle in enumerate((first, second, first, second))
                    )
                )
                assert outcomes.count(True) == 1, outcomes
                winner = outcomes.index(True)
                assert (await second.load("race")).body == {"writer": winner, "round": expected}
        finally:
            await first.stop()
            await second.stop()
