"""The standard connector set of a process: http, python, noop, kafka.publish and amqp.publish."""

from __future__ import annotations

from connectors.amqp_publish import AmqpPublishConnector
from connectors.base import Connectors
from connectors.http import HttpConnector
from connectors.kafka_publish import KafkaPublishConnector
from connectors.noop import NoopConnector
from connectors.python import PythonConnector
from orchestrator.settings import Settings


def default_connectors(python_threads: int = 8, settings: Settings | None = None) -> Connectors:
    """New, unstarted connectors; the caller starts and stops them (``async with``).

    ``settings`` names the connections the publishers use (None: read from the environment on
    first use). The publishers open nothing, and import no broker client, until a step uses them.
    """
    return Connectors(
        [
            HttpConnector(),
            PythonConnector(
                python_threads,
                processes=settings.python_processes if settings else 2,
                isolation=settings.python_isolation if settings else "thread",
            ),
            NoopConnector(),
            KafkaPublishConnector(settings),
            AmqpPublishConnector(settings),
        ]
    )
