"""The engine suite on the embedded backends: memory and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from connectors.base import Connectors
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from tests.engine_suite import EngineSuite


class TestEngineEmbedded(EngineSuite):
    @pytest.fixture(params=["memory", "sqlite"])
    def make_runtime(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Callable[[Connectors], AbstractAsyncContextManager[Runtime]]:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/engine.db"

        @asynccontextmanager
        async def make(connectors: Connectors) -> AsyncIterator[Runtime]:
            async with Runtime(Settings(event_log_url=url), connectors=connectors) as runtime:
                yield runtime

        return make
