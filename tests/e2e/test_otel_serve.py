"""A real ``serve`` with ORCHESTRATOR_OTEL=true exports the spans of an execution it ran (the
console exporter, picked by OTEL_TRACES_EXPORTER), flushed when it stops; without the setting it
exports nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiohttp
import pytest

from orchestrator.settings import Settings
from tests.e2e.test_server import definitions_dir, serve

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def run_one(tmp_path: Path, otel: bool) -> None:
    settings = Settings(auth=False, event_log_url="memory://", port=0, otel=otel, definitions=(str(definitions_dir(tmp_path)),))
    server, url = await serve(settings)
    try:
        async with aiohttp.ClientSession() as session:
            body = {"workflow": "echo", "input": {"x": 1}}
            async with session.post(url + "/api/v1/executions", json=body, headers={"traceparent": CALLER}) as response:
                assert response.status in (200, 201, 202), await response.text()
                execution_id = (await response.json())["execution_id"]
            status, deadline = "", asyncio.get_running_loop().time() + 30  # a loaded machine is slow
            while status != "succeeded" and asyncio.get_running_loop().time() < deadline:
                async with session.get(f"{url}/api/v1/executions/{execution_id}") as response:
                    status = (await response.json())["status"]
                await asyncio.sleep(0.02)
            assert status == "succeeded"
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


def spans(text: str) -> list[dict[str, object]]:
    decoder, found, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        if isinstance(value, dict) and "context" in value:
            found.append(value)
        at = text.find("{", end)
    return found


async def test_serve_exports_the_spans_of_an_execution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # the SDK's batch goes out every 0.1 s
    await run_one(tmp_path, otel=True)
    out = capsys.readouterr().out
    for _ in range(150):  # the SDK's exporter thread may still be writing its batch
        if len(spans(out)) >= 2:
            break
        await asyncio.sleep(0.1)
        out += capsys.readouterr().out
    found = {str(span["name"]): span for span in spans(out)}
    assert set(found) == {"execution echo", "step call"}
    execution, step = found["execution echo"], found["step call"]
    assert execution["parent_id"] == "0x00f067aa0ba902b7"  # the caller's span, from the traceparent
    assert execution["context"]["trace_id"] == "0x4bf92f3577b34da6a3ce929d0e0e4736"  # type: ignore[index]
    assert step["parent_id"] == execution["context"]["span_id"]  # type: ignore[index]


async def test_without_the_setting_nothing_is_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    await run_one(tmp_path, otel=False)
    assert spans(capsys.readouterr().out) == []


async def test_an_unknown_exporter_fails_startup_with_a_settings_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.settings import SettingsError

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "carrier-pigeon")
    with pytest.raises(SettingsError, match="carrier-pigeon"):
        await serve(Settings(auth=False, event_log_url="memory://", port=0, otel=True))
