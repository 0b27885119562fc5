"""KeyedLocks: one key at a time, other keys in parallel, nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib

from orchestrator.engine.keyed_locks import KeyedLocks


async def test_one_key_is_serialised_and_other_keys_go_ahead() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def work(key: str, name: str, wait: bool) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            if wait:
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(work("a", "a1", True))
    second = asyncio.create_task(work("a", "a2", False))
    await asyncio.sleep(0)
    await work("b", "b", False)  # not blocked by a1
    assert order == ["a1 in", "b in", "b out"] and len(locks) == 1
    release.set()
    await asyncio.gather(first, second)
    assert order[3:] == ["a1 out", "a2 in", "a2 out"]
    assert len(locks) == 0


async def test_a_waiter_cancelled_leaves_nothing_behind() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("a"):
            await release.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    release.set()
    await held
    assert len(locks) == 0


async def test_an_error_inside_releases_the_key() -> None:
    locks = KeyedLocks()
    with contextlib.suppress(RuntimeError):
        async with locks.hold("a"):
            raise RuntimeError("boom")
    assert len(locks) == 0
    async with locks.hold("a"):  # free again
        pass
