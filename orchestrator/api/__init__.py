"""The HTTP surface: REST API under /api/v1, health, OpenAPI; webhooks mount beside it."""
