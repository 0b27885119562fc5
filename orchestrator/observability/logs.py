"""Log lines as JSON (``ORCHESTRATOR_LOG_FORMAT=json``): one object per line, with the context
``orchestrator.logcontext`` binds (execution id, workflow, step, tenant, trace id) and the node.

::

    {"time": "2026-12-07T01:02:03.456Z", "level": "INFO", "logger": "orchestrator.process",
     "message": "serving on http://127.0.0.1:8080", "node": "host-a:4242", "execution_id": ...}
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

from orchestrator import logcontext

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def node_name() -> str:
    """This process's name in logs: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object (never raises for an odd argument: ``str`` of it)."""

    def __init__(self, node: str | None = None) -> None:
        super().__init__()
        self.node = node or node_name()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "node": self.node,
        }
        line.update(logcontext.current())
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        seconds = int(record.created)
        millis = int((record.created - seconds) * 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def configure(level: int, log_format: str = "text") -> None:
    """Configure the root logger once per process (the CLI calls this): text or JSON lines."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
