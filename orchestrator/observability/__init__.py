"""Observability at the edge: Prometheus metrics over the instrumentation hooks, their HTTP
exposition, and JSON log lines (docs/observability.md). Only the process root wires these."""
