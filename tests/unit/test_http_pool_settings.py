"""The http connector's pool limits come from the settings; bad values stop the process at start."""

from __future__ import annotations

import aiohttp
import pytest

from connectors.defaults import default_connectors
from connectors.http import HttpConnector
from orchestrator.settings import Settings, SettingsError


def test_the_pool_settings_parse_with_their_defaults() -> None:
    assert (
        Settings.from_env({}).http_max_connections,
        Settings.from_env({}).http_max_connections_per_host,
    ) == (100, 0)
    given = Settings.from_env(
        {"ORCHESTRATOR_HTTP_MAX_CONNECTIONS": "20", "ORCHESTRATOR_HTTP_MAX_CONNECTIONS_PER_HOST": "4"}
    )
    assert (given.http_max_connections, given.http_max_connections_per_host) == (20, 4)
    for name, value in (("HTTP_MAX_CONNECTIONS", "0"), ("HTTP_MAX_CONNECTIONS_PER_HOST", "-1")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({f"ORCHESTRATOR_{name}": value})


async def test_the_connector_pool_uses_them() -> None:
    settings = Settings(http_max_connections=20, http_max_connections_per_host=4)
    connector = default_connectors(settings=settings).get("http")
    assert isinstance(connector, HttpConnector)
    await connector.start()
    try:
        pool = connector.session.connector
        assert isinstance(pool, aiohttp.TCPConnector)
        assert (pool.limit, pool.limit_per_host) == (20, 4)
    finally:
        await connector.stop()
