"""The Cassandra analytics store passes the analytics contract against a real Cassandra."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.backends.cassandra.event_log import CassandraEventLog
from orchestrator.ports import EventLog
from tests.contracts.analytics import AnalyticsContract
from tests.integration.conftest import TestKeyspace

pytestmark = pytest.mark.integration


class TestCassandraAnalytics(AnalyticsContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: TestKeyspace) -> None:
        self.keyspace = cassandra_keyspace

    async def make_log(self, tmp_path: Path) -> EventLog:
        await self.keyspace.empty_once(tmp_path)
        log = CassandraEventLog.from_url(f"{self.keyspace.url}?feed_delay=2")
        await log.start()
        return log
