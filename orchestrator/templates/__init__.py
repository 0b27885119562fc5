"""Workflow templates: the format (``schemas.template``), placeholders, composition, rendering,
in-memory tests and installation into the registry (docs/templates.md)."""
