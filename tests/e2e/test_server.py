"""run_server in-process on port 0: definitions loaded, real HTTP, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from orchestrator.process import run_server
from orchestrator.settings import Settings, SettingsError
from schemas.validation import DefinitionError

ECHO = {
    "name": "echo",
    "steps": [
        {"name": "call", "type": "task", "connector": "noop", "input": {"x": "input.x"}},
    ],
}


def definitions_dir(root: Path) -> Path:
    folder = root / "definitions"
    folder.mkdir()
    (folder / "echo.yaml").write_text(yaml.safe_dump(ECHO))
    (folder / "README.txt").write_text("not a definition: ignored")
    return folder


async def serve(settings: Settings) -> tuple[asyncio.Task[None], str]:
    """Start run_server as a task; return it and its URL once it listens."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(run_server(settings, ready=ready.set_result))
    either: set[asyncio.Future[Any]] = {ready, server}
    await asyncio.wait(either, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        server.result()  # raises what stopped it
    assert ready.done(), "the server did not report ready"
    return server, ready.result()


async def refused(url: str) -> bool:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url + "/healthz"):
                return False
        except aiohttp.ClientConnectionError:
            return True


async def test_serves_then_cancel_stops_cleanly(tmp_path: Path) -> None:
    settings = Settings(auth=False,
        event_log_url="memory://", port=0, definitions=(str(definitions_dir(tmp_path)),)
    )
    server, url = await serve(settings)
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/readyz") as response:
                assert response.status == 200
                assert await response.json() == {"status": "ok"}
            async with session.get(url + "/api/v1/definitions/echo") as response:
                assert response.status == 200
                assert (await response.json())["version"] == 1
            start = {"workflow": "echo", "input": {"x": 1}}
            async with session.post(url + "/api/v1/executions", json=start) as response:
                assert response.status == 202
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    assert await refused(url)


async def test_sigterm_stops_the_server(tmp_path: Path) -> None:
    settings = Settings(auth=False, event_log_url="memory://", port=0)
    server, url = await serve(settings)
    os.kill(os.getpid(), signal.SIGTERM)  # run_server handles it: a clean return, no exception
    await asyncio.wait_for(server, timeout=10)
    assert await refused(url)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handler removed again


async def test_invalid_definitions_fail_startup_listing_every_file(tmp_path: Path) -> None:
    folder = definitions_dir(tmp_path)
    (folder / "bad.yaml").write_text(
        yaml.safe_dump({"name": "bad", "steps": [{"name": "a", "type": "nope"}]})
    )
    (folder / "broken.json").write_text("{not json")
    missing = tmp_path / "missing.yaml"
    settings = Settings(auth=False, event_log_url="memory://", port=0, definitions=(str(folder), str(missing)))
    with pytest.raises(DefinitionError) as caught:
        await run_server(settings, ready=lambda url: pytest.fail(f"served on {url}"))
    locations = [problem.location for problem in caught.value.problems]
    assert locations[0] == str(missing)
    assert any(location.startswith(f"{folder / 'bad.yaml'}: steps[0]") for location in locations)
    assert str(folder / "broken.json") in locations
    assert "echo.yaml" not in str(caught.value)


@pytest.mark.parametrize("access_log", [False, True])
async def test_access_log_is_off_unless_asked_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, access_log: bool
) -> None:
    caplog.set_level("INFO", logger="aiohttp.access")
    server, url = await serve(Settings(auth=False, event_log_url="memory://", port=0, access_log=access_log))
    try:
        async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as response:
            assert response.status == 200
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert bool([line for line in lines if "GET /healthz" in line]) == access_log


def test_access_log_setting_reads_true_and_false() -> None:
    assert Settings.from_env({}).access_log is False
    assert Settings.from_env({"ORCHESTRATOR_ACCESS_LOG": "true"}).access_log is True
    assert Settings.from_env({"ORCHESTRATOR_ACCESS_LOG": "0"}).access_log is False
    with pytest.raises(SettingsError, match="ORCHESTRATOR_ACCESS_LOG must be true or false"):
        Settings.from_env({"ORCHESTRATOR_ACCESS_LOG": "maybe"})
