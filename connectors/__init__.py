"""Connectors: what task steps call (http, python, noop; kafka and amqp publishers later)."""

from connectors.base import Connector, ConnectorError, Connectors, StepCall

__all__ = ["Connector", "ConnectorError", "Connectors", "StepCall"]
