"""Triggers: the inbound edges that start executions: webhooks, Kafka and AMQP listeners, windows."""
