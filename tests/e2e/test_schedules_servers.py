"""Schedules across two real ``orchestrator serve`` processes on one SQLite file, one of them
killed with SIGKILL midway: every fire time starts exactly one execution, none is skipped. Then
``orchestrator schedules list|describe|pause|unpause|trigger|backfill`` against them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from schemas.definition import ScheduleTrigger
from schemas.schedule_times import rfc3339_ms
from tests.e2e.serverproc import Port0Server, cli_env, http_json
from tests.e2e.test_cli import cli, ok
from triggers.schedule_fires import Schedule

TICKER = """\
name: ticker
triggers:
  - {type: schedule, name: each-second, cron: "* * * * * *", catchup: all, catchup_window: 1m, overlap: allow}
steps:
  - {name: done, type: succeed}
"""
# Anchored half an hour off now: no hourly fire of its own lands while the module runs (one at
# a whole hour once made a manual trigger below skip), and the last three hours still hold three.
HELD_ANCHOR = rfc3339_ms(int(time.time()) - 4.5 * 3600)
HELD = f"""\
name: held
triggers:
  - {{type: schedule, name: hourly, every: 1h, start_at: "{HELD_ANCHOR}", overlap: skip}}
steps:
  - {{name: hold, type: wait_for_event, event: go}}
"""
TICKER_SCHEDULE = Schedule(
    "ticker", ScheduleTrigger(name="each-second", cron="* * * * * *", catchup="all", catchup_window="1m", overlap="allow")
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Port0Server, Port0Server]]:
    tmp = tmp_path_factory.mktemp("schedules")
    (tmp / "defs").mkdir()
    (tmp / "defs" / "ticker.yaml").write_text(TICKER)
    (tmp / "defs" / "held.yaml").write_text(HELD)
    env = cli_env(f"sqlite:///{tmp}/shared.db", {"ORCHESTRATOR_TRIGGER_POLL_INTERVAL": "0.5"})
    first = Port0Server(env, ["--definitions", str(tmp / "defs")], tmp / "first.log")
    second = Port0Server(env, ["--definitions", str(tmp / "defs")], tmp / "second.log")
    try:
        first.start()
        second.start()
        yield env, first, second
    finally:
        first.stop()
        second.stop()
        print(first.output()[-4000:], second.output()[-4000:])  # shown when a test fails


def get(url: str, path: str) -> Any:
    status, body = http_json("GET", url + path)
    assert status == 200, (path, status, body)
    return body


def executions(url: str, workflow: str) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = get(url, f"/api/v1/executions?workflow={workflow}&limit=500" + (f"&cursor={cursor}" if cursor else ""))
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def scheduled_time(url: str, execution_id: str) -> str:
    [started] = get(url, f"/api/v1/executions/{execution_id}/history?limit=1")["events"]
    return str(started["data"]["metadata"]["schedule"]["scheduled_time"])


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_every_fire_time_starts_exactly_one_execution_across_two_servers_and_a_kill(
    cluster: tuple[dict[str, str], Port0Server, Port0Server],
) -> None:
    _, first, second = cluster
    time.sleep(5)
    first.kill()  # SIGKILL: whatever it had decided and not finished, the survivor finishes
    time.sleep(4)
    status, _ = http_json("POST", second.url + "/api/v1/schedules/ticker/each-second/pause", {"note": "counting"})
    assert status == 200
    time.sleep(1.5)  # a fire decided just before the pause finishes
    view = get(second.url, "/api/v1/schedules/ticker/each-second")
    assert view["paused"] and view["pending"] == 0
    found = executions(second.url, "ticker")
    times = sorted(epoch(scheduled_time(second.url, e["execution_id"])) for e in found)
    assert len(times) >= 7, times
    expected = [times[0] + k for k in range(int(times[-1] - times[0]) + 1)]
    assert times == expected  # one execution per second, no gap, no second one for any time
    ids = sorted(e["execution_id"] for e in found)
    assert ids == sorted(TICKER_SCHEDULE.execution_id(t, "scheduled") for t in times)
    assert rfc3339_ms(times[-1]) <= view["decided_until"]
    assert view["counts"]["skipped"] == 0 and view["counts"]["failed"] == 0


def test_the_cli_lists_describes_pauses_triggers_and_backfills(
    cluster: tuple[dict[str, str], Port0Server, Port0Server],
) -> None:
    env, _, second = cluster
    env = {**env, "ORCHESTRATOR_URL": second.url}
    listing = ok(cli(env, "schedules", "list"))
    assert "ticker" in listing and "each-second" in listing and "held" in listing
    described = ok(cli(env, "schedules", "describe", "held", "hourly", "--next", "3"))
    assert "every 1h" in described and described.count(".000Z") >= 3
    as_json = json.loads(ok(cli(env, "schedules", "describe", "held", "hourly", "--json", "--next", "2")))
    assert len(as_json["next"]) == 2

    paused = ok(cli(env, "schedules", "pause", "held", "hourly", "--note", "db migration"))
    assert "paused by" in paused and "db migration" in paused
    assert "active" in ok(cli(env, "schedules", "unpause", "held", "hourly"))

    fired = ok(cli(env, "schedules", "trigger", "held", "hourly"))
    assert "started" in fired
    assert "skipped" in ok(cli(env, "schedules", "trigger", "held", "hourly"))  # overlap skip: it runs
    assert "started" in ok(cli(env, "schedules", "trigger", "held", "hourly", "--overlap", "allow"))

    now = time.time()
    start, end = rfc3339_ms(now - 3 * 3600 - 10), rfc3339_ms(now - 10)
    counted = ok(cli(env, "schedules", "backfill", "held", "hourly", "--from", start, "--to", end))
    assert "3 fire times" in counted and "--yes" in counted
    assert len(executions(second.url, "held")) == 2
    done = ok(cli(env, "schedules", "backfill", "held", "hourly", "--from", start, "--to", end, "--yes"))
    assert "3 started" in done
    assert len(executions(second.url, "held")) == 5
    again = ok(cli(env, "schedules", "backfill", "held", "hourly", "--from", start, "--to", end, "--yes"))
    assert "0 started, 3 had started" in again


def test_bad_requests_get_clear_errors(cluster: tuple[dict[str, str], Port0Server, Port0Server]) -> None:
    env, _, second = cluster
    env = {**env, "ORCHESTRATOR_URL": second.url}
    result = cli(env, "schedules", "backfill", "held", "hourly", "--from", "yesterday", "--to", "2026-01-01T00:00:00Z")
    assert result.returncode == 2 and "not an RFC 3339 time" in result.stderr
    future = rfc3339_ms(time.time() + 3600)
    result = cli(env, "schedules", "backfill", "held", "hourly", "--from", "2026-01-01T00:00:00Z", "--to", future)
    assert result.returncode == 1 and "invalid_range" in result.stderr and "Traceback" not in result.stderr
    result = cli(env, "schedules", "describe", "held", "nope")
    assert result.returncode == 1 and "unknown_trigger" in result.stderr
    status, body = http_json("POST", second.url + "/api/v1/schedules/ticker/each-second/backfill", {"start": "x"})
    assert status == 400 and body["error"]["code"] == "invalid_body"
    status, body = http_json(
        "POST",
        second.url + "/api/v1/schedules/ticker/each-second/backfill",
        {"start": "2026-01-01T00:00:00Z", "end": rfc3339_ms(time.time() - 1)},
    )
    assert status == 400 and body["error"]["code"] == "backfill_too_large"
    status, body = http_json("GET", second.url + "/api/v1/schedules/ticker/each-second?count=1000")
    assert status == 400 and body["error"]["code"] == "invalid_parameter"
    status, body = http_json("POST", second.url + "/api/v1/schedules/nope/each-second/pause", {})
    assert status == 404 and body["error"]["code"] == "unknown_workflow"
