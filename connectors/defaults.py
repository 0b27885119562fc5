"""The standard connector set of a process: http, python, noop, kafka.publish and amqp.publish."""

from __future__ import annotations

from connectors.amqp_publish import AmqpPublishConnector
from connectors.base import Connectors
from connectors.egress import EgressPolicy
from connectors.http import HttpConnector
from connectors.kafka_publish import KafkaPublishConnector
from connectors.noop import NoopConnector
from connectors.python import PythonConnector
from orchestrator.settings import Settings


def default_connectors(python_threads: int = 8, settings: Settings | None = None) -> Connectors:
    """New, unstarted connectors; the caller starts and stops them (``async with``).

    ``settings`` names the connections the publishers use (None: read from the environment on
    first use), the python connector's allowed modules and the http connector's egress allow-list
    (None: nothing beyond public addresses, no python function). The publishers open nothing, and import no broker client, until a step uses them.
    """
    return Connectors(
        [
            HttpConnector(
                max_connections=settings.http_max_connections if settings else 100,
                max_connections_per_host=settings.http_max_connections_per_host if settings else 0,
                egress=EgressPolicy(settings.http_allow if settings else ()),
            ),
            PythonConnector(
                python_threads,
                settings.python_allow if settings else (),
                processes=settings.python_processes if settings else 2,
                isolation=settings.python_isolation if settings else "thread",
            ),
            NoopConnector(),
            KafkaPublishConnector(settings),
            AmqpPublishConnector(settings),
        ]
    )
