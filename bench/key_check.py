"""Key-check latency: what authenticating one request with an API key costs, beside the raw HMAC.

    python -m bench.key_check [--quick] [--json]

Measured in one run, each as the median of ``ROUNDS`` rounds of ``N`` calls (µs per call):

- **hmac**: ``hmac.new(pepper, secret, sha256).hexdigest()`` alone, the floor of any check;
- **parse**: the key's format and CRC-32 checksum (``orchestrator.auth.keys.parse_key``): what a
  malformed key costs before it is refused without a lookup;
- **cached**: ``ApiKeyAuthenticator.authenticate`` with the key's record cached (the usual case:
  records are trusted for 5 s): parse, HMAC, constant-time compare, expiry, principal;
- **sqlite**: the same with the cache off, reading the record from a SQLite access store each
  time (its dedicated thread and one primary-key SELECT): the cost every 5 s per key;
- **middleware**: a whole ``GET`` through the aiohttp test client with authentication on, minus
  the same request with authentication off (the middleware: authenticate, roles, permission).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator.auth.apikeys import ApiKeyAuthenticator, KeyService
from orchestrator.auth.keys import Hasher, parse_key
from orchestrator.backends.memory_access import MemoryAccessStore
from orchestrator.backends.sqlite.access import SQLiteAccessStore

ROUNDS = 5


def per_call(function: Callable[[], object], n: int) -> float:
    rounds = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for _ in range(n):
            function()
        rounds.append((time.perf_counter() - began) / n * 1e6)
    return statistics.median(rounds)


async def per_call_async(function: Callable[[], Awaitable[object]], n: int) -> float:
    rounds = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for _ in range(n):
            await function()
        rounds.append((time.perf_counter() - began) / n * 1e6)
    return statistics.median(rounds)


async def middleware_cost(n: int) -> tuple[float, float]:
    """(µs per GET /api/v1/definitions with auth on, with auth off), same app otherwise."""
    from aiohttp.test_utils import TestClient, TestServer

    from orchestrator.auth.control import access_control
    from orchestrator.process import build_app
    from orchestrator.runtime import Runtime
    from orchestrator.settings import Settings

    figures = []
    for auth in (True, False):
        settings = Settings(event_log_url="memory://", retention_interval=0, auth=auth)
        async with Runtime(settings) as runtime:
            control = access_control(runtime.access, settings)
            key = (await control.keys.create("bench", "default", {"default": ["viewer"]})).key
            headers = {"Authorization": f"Bearer {key}"}
            async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:

                async def get(client: TestClient[Any, Any] = client, headers: dict[str, str] = headers) -> None:
                    async with client.get("/api/v1/definitions", headers=headers) as response:
                        assert response.status == 200
                        await response.read()

                await per_call_async(get, 50)  # warm up
                figures.append(await per_call_async(get, n))
    return figures[0], figures[1]


async def measure(quick: bool) -> dict[str, Any]:
    n = 2_000 if quick else 20_000
    pepper = b"a pepper of 32 bytes, say.......".ljust(32)
    memory = MemoryAccessStore()
    service = KeyService(memory, Hasher(pepper))
    created = await service.create("bench", "default", {"default": ["viewer"]})
    secret = parse_key(created.key).secret.encode()
    headers = {"Authorization": f"Bearer {created.key}"}
    cached = ApiKeyAuthenticator(memory, Hasher(pepper), cache_seconds=3600.0, touch_every=1e9)
    figures: dict[str, Any] = {
        "hmac_us": per_call(lambda: hmac.new(pepper, secret, hashlib.sha256).hexdigest(), n),
        "parse_us": per_call(lambda: parse_key(created.key), n),
        "cached_us": await per_call_async(lambda: cached.authenticate(headers, {}), n),
    }
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteAccessStore.from_url(f"sqlite:///{Path(folder) / 'keys.db'}")
        async with sqlite:
            await sqlite.add_key(created.record)
            uncached = ApiKeyAuthenticator(sqlite, Hasher(pepper), cache_seconds=0.0, touch_every=1e9)
            figures["sqlite_us"] = await per_call_async(lambda: uncached.authenticate(headers, {}), n // 4)
    on, off = await middleware_cost(n // 10)
    figures["request_auth_on_us"], figures["request_auth_off_us"] = on, off
    figures["middleware_us"] = on - off
    figures["calls"] = n
    return figures


def table(figures: dict[str, Any]) -> str:
    rows = [
        ("raw HMAC-SHA256 of the secret", figures["hmac_us"]),
        ("format + checksum (a malformed key is refused here)", figures["parse_us"]),
        ("authenticate, record cached", figures["cached_us"]),
        ("authenticate, record read from SQLite", figures["sqlite_us"]),
        ("middleware per request (GET with auth on minus off)", figures["middleware_us"]),
    ]
    lines = ["| key check | µs per call |", "|---|---:|"]
    lines += [f"| {name} | {value:.1f} |" for name, value in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.quick))
    print(json.dumps(figures, indent=2) if args.json else table(figures))


if __name__ == "__main__":
    main()
