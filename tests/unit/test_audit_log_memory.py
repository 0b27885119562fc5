"""The in-memory audit log passes the AuditLog contract."""

from __future__ import annotations

from pathlib import Path

from orchestrator.backends.memory_audit import MemoryAuditLog
from orchestrator.ports import AuditLog
from tests.contracts.audit_log import AuditLogContract


class TestMemoryAuditLog(AuditLogContract):
    async def make_log(self, tmp_path: Path) -> AuditLog:
        log = MemoryAuditLog()
        await log.start()
        return log
