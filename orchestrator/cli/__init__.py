"""The ``orchestrator`` command, one module per command group."""
