"""No single request does unbounded work: the timeline and the diff of 20,000-event histories
answer quickly with a bounded body (a page of the timeline; a diff that says what it left out)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.replay import LOOP, build_history
from orchestrator.cli.main import main as cli_main
from orchestrator.core import events as ev
from orchestrator.history.diff import MAX_DIFF_EVENTS, MAX_EVENT_DIFFS
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.envelope import Envelope

Client = TestClient[web.Request, web.Application]
EVENTS = 20_000
MAX_BODY = 512 * 1024  # bytes: what one answer may weigh here, whatever the history's length
QUICK = 5.0  # seconds (generous: the machine is shared); the unbounded answers took longer


@pytest.fixture(scope="module")
def histories() -> tuple[list[Envelope], list[Envelope]]:
    """Two long histories of the same loop; b's step outputs differ from a's on every round."""
    a = build_history(EVENTS, "long-history-a").envelopes
    b = [
        dataclasses.replace(e, data={**e.data, "output": {"n": -e.sequence}})
        if e.type == ev.STEP_SUCCEEDED
        else e
        for e in build_history(EVENTS, "long-history-b").envelopes
    ]
    return a, b


@pytest.fixture
async def client(histories: tuple[list[Envelope], list[Envelope]]) -> AsyncIterator[Client]:
    async with Runtime(Settings(auth=False, event_log_url="memory://")) as runtime:
        for envelopes in histories:
            await runtime.log.append(envelopes[0].subject, 0, envelopes)
        async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
            assert (await client.post("/api/v1/definitions", json=LOOP)).status == 201
            yield client


async def timed(client: Client, path: str) -> tuple[dict[str, Any], int, float]:
    """(JSON body, body bytes, seconds) of a 200 answer."""
    began = time.perf_counter()
    response = await client.get(path)
    raw = await response.read()
    elapsed = time.perf_counter() - began
    assert response.status == 200, raw[:500]
    return json.loads(raw), len(raw), elapsed


async def test_the_timeline_of_a_long_history_is_paged(client: Client) -> None:
    base = "/api/v1/executions/long-history-a/timeline"
    first, size, elapsed = await timed(client, base)
    print(f"timeline page: {size} bytes in {elapsed:.3f} s")
    assert size < MAX_BODY and elapsed < QUICK, (size, elapsed)
    assert [row["sequence"] for row in first["events"]] == list(range(1, 1001))
    assert first["next_after"] == 1000 and first["status"] == "succeeded"
    assert first["steps"] and all(span["kind"] in ("task", "wait", "event", "parallel", "child", "reused")
                                  for span in first["steps"])

    page, size, elapsed = await timed(client, f"{base}?after=15000&limit=300")
    assert size < MAX_BODY and elapsed < QUICK
    assert [row["sequence"] for row in page["events"]] == list(range(15001, 15301))
    assert page["next_after"] == 15300
    assert page["status"] == "succeeded"  # the execution's, though this page has no terminal event
    assert page["events"][0]["offset_seconds"] > first["events"][-1]["offset_seconds"]  # from event 1

    last, _, _ = await timed(client, f"{base}?after={EVENTS - 5}")
    assert last["next_after"] is None and last["events"][-1]["type"] == ev.EXECUTION_SUCCEEDED

    for bad in ("limit=0", "limit=1001", "after=-1", "limit=x", f"after={2**63}"):
        response = await client.get(f"{base}?{bad}")
        assert response.status == 400, bad
        assert (await response.json())["error"]["code"] == "invalid_parameter"


async def test_the_diff_of_long_histories_is_capped_and_says_so(client: Client) -> None:
    body, size, elapsed = await timed(client, "/api/v1/executions/long-history-a/diff/long-history-b")
    print(f"diff: {size} bytes in {elapsed:.3f} s")
    assert size < MAX_BODY and elapsed < QUICK, (size, elapsed)
    assert body["truncated"] is True and body["identical"] is False
    truncation = " | ".join(body["truncation"])
    assert f"compared the first {MAX_DIFF_EVENTS} of the {EVENTS + 2} events of a" in truncation
    assert f"the first {MAX_EVENT_DIFFS} of " in truncation
    history = body["history"]
    assert len(history["events"]) == MAX_EVENT_DIFFS
    assert history["differing_events"] > MAX_EVENT_DIFFS  # the count stays exact for what was compared
    assert body["a"]["events"] == body["b"]["events"] == EVENTS + 2
    assert body["state"]["identical"] is False  # the current states, loaded whole
    assert "steps.work.n" in {c["path"] for c in body["state"]["steps"]["changed"]["work"]}


async def test_the_cli_shows_a_window_of_a_long_history(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    """``orchestrator history ID --after SEQ --limit N`` reads only that window; its times count
    from the first event."""
    url = str(client.make_url("")).rstrip("/")
    args = ["history", "long-history-a", "--after", "19990", "--limit", "5", "--url", url]
    capsys.readouterr()
    began = time.perf_counter()
    code = await asyncio.to_thread(cli_main, args)
    out, err = capsys.readouterr()
    assert code == 0 and time.perf_counter() - began < QUICK, err
    rows = [line.split() for line in out.splitlines() if line[:5].isdigit()]
    assert [row[0] for row in rows] == [str(seq) for seq in range(19991, 19996)]
    assert all(float(row[1].strip("+s")) > 6 for row in rows)  # from event 1 (1 ms a round), not 19991
    code = await asyncio.to_thread(cli_main, [*args[:2], "--limit", "0", "--url", url])
    assert code == 2 and "--limit" in capsys.readouterr().err
