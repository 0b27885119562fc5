"""Connectors: what task steps call (http, python, noop, kafka.publish, amqp.publish)."""

from connectors.base import Connector, ConnectorError, Connectors, StepCall

__all__ = ["Connector", "ConnectorError", "Connectors", "StepCall"]
