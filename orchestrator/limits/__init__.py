"""Limits on what a tenant may take: quotas (running executions, starts per minute, payload size)."""
