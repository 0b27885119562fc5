"""The standard connector set of a process: http, python and noop."""

from __future__ import annotations

from connectors.base import Connectors
from connectors.http import HttpConnector
from connectors.noop import NoopConnector
from connectors.python import PythonConnector


def default_connectors(python_threads: int = 8) -> Connectors:
    """New, unstarted connectors; the caller starts and stops them (``async with``)."""
    return Connectors([HttpConnector(), PythonConnector(python_threads), NoopConnector()])
