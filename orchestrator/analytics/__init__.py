"""Workflow analytics: aggregates folded from the event feed (pure), their store port and queries."""
