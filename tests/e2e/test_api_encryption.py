"""The API over an encrypted SQLite log: payloads read back in plaintext, and a tampered stored
event answers a JSON error naming it (code ``undecodable_event``), never a traceback."""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import closing
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.encryption_kit import MARK, key_text, run_marked


def settings(tmp_path: Path) -> Settings:
    return Settings(auth=False, event_log_url=f"sqlite:///{tmp_path}/o.db", retention_interval=0, snapshot_every=0, encryption_keys=key_text("k1")
    )


async def test_history_is_plaintext_and_a_tampered_event_is_a_clear_error(tmp_path: Path) -> None:
    async with Runtime(settings(tmp_path)) as runtime:
        (execution_id,) = await run_marked(runtime)
        async with TestClient(TestServer(build_app(runtime, runtime.settings))) as client:
            response = await client.get(f"/api/v1/executions/{execution_id}/history")
            assert response.status == 200 and MARK in await response.text()
    with closing(sqlite3.connect(tmp_path / "o.db")) as db, db:
        (body,) = db.execute("SELECT body FROM events WHERE sequence = 2 AND execution_id = ?", (execution_id,)).fetchone()
        event = json.loads(body)
        blob = bytearray(base64.b64decode(event["data_base64"]))
        blob[-1] ^= 0x80
        event["data_base64"] = base64.b64encode(bytes(blob)).decode()
        db.execute("UPDATE events SET body = ? WHERE sequence = 2 AND execution_id = ?", (json.dumps(event).encode(), execution_id))
    async with Runtime(settings(tmp_path), recover=False) as again, TestClient(
        TestServer(build_app(again, again.settings))
    ) as client:
        response = await client.get(f"/api/v1/executions/{execution_id}/history")
        answer = await response.json()
        assert response.status == 500, answer
        assert answer["error"]["code"] == "undecodable_event"
        assert f"#2 of {execution_id}" in answer["error"]["message"] and "does not verify" in answer["error"]["message"]
