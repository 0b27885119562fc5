"""``/api/v1/triggers/{workflow}/{name}/dead-letters`` through the real auth middleware, without a
broker: what parks nothing answers 404 ``no_dead_letters``, an unknown trigger 404, a viewer 403,
another tenant's trigger is as unknown as a missing one. (Reading and moving back real dead
letters: tests/integration/test_kafka_trigger.py and test_amqp_trigger.py.)"""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from orchestrator.auth.control import access_control
from orchestrator.process import build_app
from orchestrator.runtime import Runtime
from orchestrator.settings import Settings
from schemas.validation import parse_definition

HOOKED = {
    "name": "hooked",
    "triggers": [{"type": "webhook", "name": "in"}],
    "steps": [{"name": "done", "type": "succeed"}],
}
OTHER = {**HOOKED, "name": "theirs", "tenant": "globex", "triggers": [{"type": "webhook", "name": "in", "tenant": "globex"}]}


async def test_dead_letter_routes_refuse_what_parks_nothing_and_who_may_not() -> None:
    settings = Settings(event_log_url="memory://", retention_interval=0)
    async with Runtime(settings) as runtime:
        control = access_control(runtime.access, settings)
        keys = {role: (await control.keys.create(role, "default", {"default": [role]})).key for role in ("operator", "viewer")}
        await runtime.register(parse_definition(HOOKED))
        await runtime.register(parse_definition(OTHER))
        async with TestClient(TestServer(build_app(runtime, settings, control=control))) as client:

            async def call(method: str, path: str, role: str = "operator") -> tuple[int, str]:
                response = await client.request(method, path, headers={"Authorization": f"Bearer {keys[role]}"})
                return response.status, (await response.json())["error"]["code"]

            base = "/api/v1/triggers"
            assert await call("GET", f"{base}/hooked/in/dead-letters") == (404, "no_dead_letters")
            assert await call("POST", f"{base}/hooked/in/dead-letters/0:1/redrive") == (404, "no_dead_letters")
            assert await call("GET", f"{base}/hooked/nope/dead-letters") == (404, "unknown_trigger")
            assert await call("GET", f"{base}/theirs/in/dead-letters") == (404, "unknown_trigger")
            assert await call("GET", f"{base}/hooked/in/dead-letters", "viewer") == (403, "forbidden")
            assert await call("GET", f"{base}/hooked/in/dead-letters?limit=0") == (400, "invalid_parameter")
