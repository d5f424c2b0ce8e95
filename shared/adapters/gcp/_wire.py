"""What the Cloud KMS and Secret Manager adapters share without importing each other's client
library: the CRC32C both use for payload integrity, and the retry of transient errors.

(Kept apart from ``cloud_kms`` so that Secret Manager, which webhook functions use, never pulls
in ``google.cloud.kms``.)
"""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.api_core import retry as retries


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as Cloud KMS and Secret Manager use for integrity checks."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def transient_retry(deadline: float) -> retries.Retry:
    """Retry 503s and deadline overruns with backoff, for at most ``deadline`` seconds."""
    return retries.Retry(
        initial=0.1,
        maximum=5.0,
        multiplier=1.3,
        predicate=retries.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded),
        timeout=deadline,
    )
