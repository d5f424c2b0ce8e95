"""Tamper-evident audit log (business data, default database): :mod:`shared.audit.chain`
appends, :mod:`shared.audit.checkpoint` anchors the head, :mod:`shared.audit.verify` checks."""

from shared.audit.chain import ENTRIES, HEADS, KEY_SECRET, AuditLog
from shared.audit.checkpoint import CHECKPOINTS, Checkpoint, from_log_lines
from shared.audit.verify import VerifyResult, chains, verify

__all__ = ["CHECKPOINTS", "ENTRIES", "HEADS", "KEY_SECRET", "AuditLog", "Checkpoint",
           "VerifyResult", "chains", "from_log_lines", "verify"]
