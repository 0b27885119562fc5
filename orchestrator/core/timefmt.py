"""RFC 3339 text for the timestamps the engine stamps on events, and back.

Pure: it formats and parses the times it is given and never reads a clock.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache


def rfc3339(timestamp: float, timespec: str = "microseconds") -> str:
    """Seconds since the epoch as UTC text ending in ``Z``: ``1970-01-01T00:00:01.000000Z``.

    ``timespec`` is :meth:`datetime.isoformat`'s (the event log uses microseconds). With
    microseconds, the text of the whole second is formatted once per second (every event of a
    commit, and most commits of one second, share it) and the microseconds are rounded as
    ``datetime.fromtimestamp`` rounds them: half to even, carried into the second.
    """
    if timespec != "microseconds" or not math.isfinite(timestamp):
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    elif micros < 0:
        micros += 1_000_000
        whole -= 1.0
    return f"{_second(int(whole))}.{micros:06d}Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=8)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").removesuffix("+00:00")


def parse_rfc3339(text: str) -> float:
    """The inverse of :func:`rfc3339`: seconds since the epoch; raises ``ValueError`` on bad text.

    The engine's own form (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) parses its whole second once per
    second and adds the microseconds exactly as ``datetime.timestamp`` does; any other form
    takes the general parser."""
    if len(text) == 27 and text[19] == "." and text[26] == "Z" and (micros := text[20:26]).isascii() and micros.isdigit():
        return (_second_parsed(text[:19]) * 1_000_000 + int(micros)) / 1_000_000
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=8)
def _second_parsed(text: str) -> int:
    """Whole seconds since the epoch of ``YYYY-MM-DDTHH:MM:SS`` in UTC (ValueError when it is not)."""
    moment = datetime.fromisoformat(text + "+00:00")
    return int((moment - _EPOCH).total_seconds())
