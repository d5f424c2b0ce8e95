"""The signature on every notification delivery (the scheme GitHub and Stripe use).

``Keyway-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``, the MAC keyed with the
subscription's secret (its UTF-8 bytes) over ``"<t>." + raw body``. ``Keyway-Timestamp``
repeats ``t``. A receiver recomputes it over the raw bytes it received, compares in constant
time and refuses a timestamp more than five minutes from its clock (README.md, "Notifications",
has the snippet). Each attempt is signed afresh, so ``t`` is the time of that attempt.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER, TIMESTAMP_HEADER = "Keyway-Signature", "Keyway-Timestamp"
EVENT_HEADER, TYPE_HEADER = "Keyway-Event-Id", "Keyway-Event-Type"
ATTEMPT_HEADER = "Keyway-Delivery-Attempt"


def mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def header(secret: bytes, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={mac(secret, timestamp, body)}"


def headers(secret: bytes, timestamp: int, body: bytes, event: dict, attempt: int
            ) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {"Content-Type": "application/json", "User-Agent": "keyway-notify/1",
            EVENT_HEADER: event["id"], TYPE_HEADER: event["type"],
            TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: header(secret, timestamp, body),
            ATTEMPT_HEADER: str(attempt)}
