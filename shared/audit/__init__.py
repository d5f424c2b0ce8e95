"""Tamper-evident audit log (business data, default database); see :mod:`shared.audit.chain`."""

from shared.audit.chain import (
    ENTRIES,
    HEADS,
    KEY_SECRET,
    AuditLog,
    VerifyResult,
    chains,
    verify,
)

__all__ = ["ENTRIES", "HEADS", "KEY_SECRET", "AuditLog", "VerifyResult", "chains", "verify"]
