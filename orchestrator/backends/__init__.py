"""Adapters for the ports, one module per backend, chosen by URL (see ``orchestrator.backends.urls``)."""
