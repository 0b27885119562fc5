"""RFC 3339 text for the timestamps the engine stamps on events, and back.

Pure: it formats and parses the times it is given and never reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(timestamp: float, timespec: str = "microseconds") -> str:
    """Seconds since the epoch as UTC text ending in ``Z``: ``1970-01-01T00:00:01.000000Z``.

    ``timespec`` is :meth:`datetime.isoformat`'s (the event log uses microseconds).
    """
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """The inverse of :func:`rfc3339`: seconds since the epoch; raises ``ValueError`` on bad text."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
