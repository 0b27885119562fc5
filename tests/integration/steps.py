"""Step functions for the distributed tests (called by the ``python`` connector)."""

from __future__ import annotations

import asyncio
from typing import Any


async def pause(n: int = 0, seconds: float = 0.02) -> dict[str, Any]:
    """Take a little time, so that steps are in flight when a process is killed."""
    await asyncio.sleep(seconds)
    return {"n": n + 1}
