"""The audit trail: who did what to which resource, append-only and hash-chained (docs/security.md)."""
