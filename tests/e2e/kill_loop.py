"""The kill loop: SIGKILL a real ``orchestrator serve`` (embedded SQLite) at random moments under a
mixed workload, restart it on the same file, again and again (``run_kill_loop``; the tests are
tests/e2e/test_kill_loop.py and, with a Kafka trigger, tests/integration/test_kill_loop_kafka.py).

The workload: webhook deliveries with delivery ids (some sent twice, some cut off by the kill and
sent again after the restart, as a provider would), a retried step (a backoff timer), a durable
wait (a timer), a wait for an event (the driver publishes the events), then one more step. What
must hold:

- after every restart, **no accepted start is lost**: every delivery that was answered 202 (or
  200) has its execution, and a delivery sent again gets the same one;
- at the end, **every execution completes** and its history has gap-free sequences and **exactly
  one StepSucceeded per step**: no step completion was recorded twice across the crashes;
- one execution per delivery id, however often it was sent.

An ``Extra`` source adds a second workflow started by something else (a Kafka topic): every key it
published is one execution at the end, completed like the others.

``ORCHESTRATOR_KILL_LOOP_ROUNDS`` (default 10) sets the number of kills, e.g. 100 for a soak;
``ORCHESTRATOR_KILL_LOOP_SEED`` replays a run (the seed is printed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.serverproc import Port0Server, cli_env

ROUNDS = int(os.environ.get("ORCHESTRATOR_KILL_LOOP_ROUNDS", "10"))
SEED = int(os.environ.get("ORCHESTRATOR_KILL_LOOP_SEED", str(random.randrange(2**32))))
FUNCTION = "tests.e2e.slow_steps:slow_step"
STEPS = ("first", "pause", "gate", "last", "done")
FINISH_WITHIN = 60.0  # seconds, after the last restart


def task(name: str, following: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "task",
        "connector": "python",
        "config": {"function": FUNCTION},
        "input": {"seconds": 0.05, "runs_file": "input.runs_file", **extra.pop("args", {})},
        "next": following,
        **extra,
    }


WORKFLOW = {
    "name": "mixed",
    "input_schema": {"type": "object", "required": ["key", "runs_file"]},
    "triggers": [{"type": "webhook", "name": "mixed", "idempotency_header": "X-Delivery"}],
    "steps": [
        task(
            "first",
            "pause",
            args={"fail_first": True},
            retry={"max_attempts": 3, "backoff": {"initial_seconds": 0.1}},
        ),
        {"name": "pause", "type": "wait", "seconds": 0.3, "next": "gate"},
        {"name": "gate", "type": "wait_for_event", "event": "go", "correlation_key": "input.key", "next": "last"},
        task("last", "done"),
        {"name": "done", "type": "succeed"},
    ],
}


@dataclass(frozen=True)
class Extra:
    """A second source of starts: ``definition`` is started by ``publish(keys)`` (acknowledged
    when it returns), each key's execution being ``execution_id(key)``."""

    definition: dict[str, Any]
    env: dict[str, str]
    publish: Callable[[list[dict[str, Any]]], Awaitable[None]]
    execution_id: Callable[[str], str]


@dataclass
class World:
    """What the driver knows: deliveries answered (id -> execution), and those cut off."""

    runs_file: str
    accepted: dict[str, str] = field(default_factory=dict)  # delivery id -> execution id
    published: dict[str, str] = field(default_factory=dict)  # key sent by the Extra -> execution id
    unsure: set[str] = field(default_factory=set)  # Extra keys whose publishing failed: sent again
    unanswered: set[str] = field(default_factory=set)  # sent, no answer (the server died)
    finished: set[str] = field(default_factory=set)  # execution ids seen succeeded
    sent: int = 0
    duplicates: int = 0
    cut: int = 0  # deliveries in flight when the server was killed
    resumed: int = 0  # executions found running after a restart, summed over the restarts
    published_started: list[int] = field(default_factory=list)  # Extra keys started, at each restart

    def input(self, key: str) -> dict[str, Any]:
        return {"key": key, "runs_file": self.runs_file}

    def body(self, delivery: str) -> bytes:
        return json.dumps(self.input(delivery)).encode()

    def expected(self) -> dict[str, str]:
        """Execution id -> its correlation key, for every start the world knows of."""
        both = {**self.accepted, **self.published}
        return {execution_id: key for key, execution_id in both.items()}


async def deliver(session: aiohttp.ClientSession, url: str, world: World, delivery: str) -> None:
    """One webhook delivery; a 202 or 200 is an accepted start, no answer leaves it unanswered."""
    world.unanswered.add(delivery)
    headers = {"Content-Type": "application/json", "X-Delivery": delivery}
    try:
        async with session.post(f"{url}/hooks/mixed", data=world.body(delivery), headers=headers) as response:
            status, answer = response.status, await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return  # killed in flight: sent again after the restart, like a provider redelivers
    assert status in (200, 202), (status, answer)
    known = world.accepted.get(delivery)
    assert known in (None, answer["execution_id"]), f"{delivery}: two executions {known}, {answer}"
    world.accepted[delivery] = answer["execution_id"]
    world.unanswered.discard(delivery)


async def publish(session: aiohttp.ClientSession, url: str, key: str) -> None:
    """The event the gate waits for (dropped by the server when nobody waits yet: sent again)."""
    body = {"name": "go", "correlation_key": key}
    try:
        async with session.post(f"{url}/api/v1/events", json=body) as response:
            assert response.status == 202, await response.text()
    except (aiohttp.ClientError, TimeoutError):
        pass


async def send_extra(extra: Extra, world: World, keys: list[str]) -> None:
    """Publish keys; those not acknowledged (the broker failed) are sent again at the end, as a
    producer retries (a key published twice is one execution)."""
    world.unsure |= set(keys)
    try:
        await extra.publish([world.input(key) for key in keys])
    except Exception as exc:
        print(f"publishing {keys} failed (sent again at the end): {exc!r}")
        return
    world.published |= {key: extra.execution_id(key) for key in keys}
    world.unsure -= set(keys)


async def extra_live(session: aiohttp.ClientSession, url: str, world: World, extra: Extra) -> None:
    """Wait until the Extra source starts executions again (a consumer group takes a while to
    take the killed member's partitions back), so that the next kill lands while it consumes."""
    key = f"k-{len(world.published) + len(world.unsure)}"
    await send_extra(extra, world, [key])
    deadline = time.monotonic() + FINISH_WITHIN
    while extra.execution_id(key) not in await statuses(session, url):
        assert time.monotonic() < deadline, f"the other source started nothing in {FINISH_WITHIN}s"
        await asyncio.sleep(0.2)


async def workload(
    session: aiohttp.ClientSession, url: str, world: World, rng: random.Random, extra: Extra | None
) -> None:
    """New deliveries, duplicates, events and Extra keys, a few at a time, until the kill."""
    while True:
        batch = [f"d-{world.sent + i}" for i in range(rng.randint(1, 6))]
        world.sent += len(batch)
        again = rng.sample(sorted(world.accepted), min(2, len(world.accepted)))
        world.duplicates += len(again)
        waiting = [key for e, key in world.expected().items() if e not in world.finished]
        keys = rng.sample(waiting, min(8, len(waiting)))
        taken = len(world.published) + len(world.unsure)
        more = [] if extra is None else [f"k-{taken + i}" for i in range(rng.randint(0, 3))]
        await asyncio.gather(
            *(deliver(session, url, world, d) for d in (*batch, *again)),
            *(publish(session, url, key) for key in keys),
            *([send_extra(extra, world, more)] if extra is not None and more else []),
        )
        await asyncio.sleep(rng.uniform(0.0, 0.05))


async def statuses(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """Every execution and its status, through the paged listing."""
    found: dict[str, str] = {}
    params = {"limit": "1000"}
    while True:
        async with session.get(f"{url}/api/v1/executions", params=params) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        found |= {item["execution_id"]: item["status"] for item in page["items"]}
        if not page["next_cursor"]:
            return found
        params["cursor"] = page["next_cursor"]


async def history(session: aiohttp.ClientSession, url: str, execution_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        path = f"{url}/api/v1/executions/{execution_id}/history"
        async with session.get(path, params={"after": str(after), "limit": "1000"}) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        events += page["events"]
        after = page["next_after"]
    return events


async def check_nothing_lost(session: aiohttp.ClientSession, url: str, world: World) -> None:
    """After a restart: every accepted start is there; cut-off deliveries are sent again."""
    present = await statuses(session, url)  # just after the restart
    world.finished = {e for e, status in present.items() if status == "succeeded"}
    world.resumed += sum(1 for status in present.values() if status == "running")
    world.published_started.append(sum(1 for e in world.published.values() if e in present))
    lost = {d: e for d, e in world.accepted.items() if e not in present}
    assert not lost, f"accepted starts lost across the kill: {lost}"
    for delivery in sorted(world.unanswered):
        await deliver(session, url, world, delivery)
    assert not world.unanswered, f"deliveries still unanswered on a live server: {world.unanswered}"
    assert set(world.accepted.values()) <= set(await statuses(session, url))


async def run_kill_loop(tmp_path: Path, rounds: int, seed: int, extra: Extra | None = None) -> World:
    """``rounds`` kills under load, a last restart, then everything must finish (``check_final``)."""
    rng = random.Random(seed)
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    for definition in (WORKFLOW, *([extra.definition] if extra is not None else [])):
        (definitions / f"{definition['name']}.json").write_text(json.dumps(definition))
    runs_file = tmp_path / "runs.txt"
    runs_file.touch()
    world = World(str(runs_file))
    env = cli_env(
        f"sqlite:///{tmp_path}/kill-loop.db",
        {"ORCHESTRATOR_RETENTION_INTERVAL": "0", **(extra.env if extra is not None else {})},
    )
    server = Port0Server(env, ["--definitions", str(definitions)], tmp_path / "server.log")
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for _ in range(rounds):
                url = await asyncio.to_thread(server.start)
                await check_nothing_lost(session, url, world)
                if extra is not None:
                    await extra_live(session, url, world, extra)
                load = asyncio.create_task(workload(session, url, world, rng, extra))
                await asyncio.sleep(rng.uniform(0.2, 1.2))  # the kill lands anywhere in the load
                await asyncio.to_thread(server.kill)
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
                world.cut += len(world.unanswered)

            url = await asyncio.to_thread(server.start)
            await check_nothing_lost(session, url, world)
            if extra is not None and world.unsure:
                await send_extra(extra, world, sorted(world.unsure))
                assert not world.unsure, f"not published even now: {world.unsure}"
            deadline = time.monotonic() + FINISH_WITHIN
            while time.monotonic() < deadline:
                now = await statuses(session, url)
                world.finished = {e for e, status in now.items() if status == "succeeded"}
                pending = [key for e, key in world.expected().items() if e not in world.finished]
                if not pending:
                    break
                await asyncio.gather(*(publish(session, url, key) for key in pending))
                await asyncio.sleep(0.2)
            await check_final(session, url, world)
    finally:
        server.stop()
        print(server.output()[-3000:])
    return world


def summary(world: World, rounds: int, seconds: float) -> str:
    return (
        f"kill loop: {len(world.accepted)} webhook and {len(world.published)} other executions from "
        f"{world.sent} deliveries (+{world.duplicates} duplicates) across {rounds} kills in "
        f"{seconds:.1f}s; {world.cut} deliveries cut off by a kill (sent again), "
        f"{world.resumed} resumptions of executions caught running by a kill"
        + (f"; other keys started by each restart: {world.published_started}" if world.published else "")
    )


async def check_final(session: aiohttp.ClientSession, url: str, world: World) -> None:
    now = await statuses(session, url)
    expected = world.expected()
    unknown, missing = set(now) - set(expected), set(expected) - set(now)
    assert not unknown and not missing, f"executions nobody started: {unknown}; starts not there: {missing}"
    assert len(now) == len(world.accepted) + len(world.published)  # one execution per key
    unfinished = {e: s for e, s in now.items() if s != "succeeded"}
    assert not unfinished, f"not finished {FINISH_WITHIN}s after the last restart: {unfinished}"
    for execution_id in now:
        found = problems(await history(session, url, execution_id))
        assert not found, f"{execution_id}: {found}"


def problems(events: list[dict[str, Any]]) -> list[str]:
    """What is wrong with a finished history of ``mixed`` (CloudEvents as the API gives them)."""
    found = []
    if [e["sequence"] for e in events] != list(range(1, len(events) + 1)):
        found.append("sequences have gaps or repeats")
    types = Counter(e["type"].rsplit(".", 1)[-1] for e in events)
    if types["ExecutionStarted"] != 1 or types["ExecutionSucceeded"] != 1:
        found.append(f"starts/ends: {types['ExecutionStarted']}/{types['ExecutionSucceeded']}")
    succeeded = Counter(e["data"]["step"] for e in events if e["type"].endswith(".StepSucceeded"))
    if succeeded != Counter(STEPS):
        found.append(f"step completions {dict(succeeded)}, not one per step")
    if not events or not events[-1]["type"].endswith(".ExecutionSucceeded"):
        found.append("it does not end with ExecutionSucceeded")
    return found
