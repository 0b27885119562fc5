"""Encryption at rest: master keyring, per-tenant data keys, and the AES-256-GCM codec on event data."""
