"""Test-only fault injection for a server subprocess (put this directory on its PYTHONPATH).

With ``ORCHESTRATOR_TEST_HOLD_AFTER_ACCEPT=<seconds>``, every ``Router.accept`` sleeps that long
AFTER its outcome is durable and before it returns, i.e. before the trigger may acknowledge: a
SIGKILL then lands exactly between "execution started" and "message acknowledged".
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

HOLD = os.environ.get("ORCHESTRATOR_TEST_HOLD_AFTER_ACCEPT")

if HOLD:
    from triggers import inbound

    _accept = inbound.Router.accept

    async def _held_accept(self: Any, message: Any) -> Any:
        outcome = await _accept(self, message)
        await asyncio.sleep(float(HOLD))
        return outcome

    inbound.Router.accept = _held_accept  # type: ignore[method-assign]
