"""Signature checks, constant-time, over the raw request bytes.

* :func:`hmac_hex` — GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``;
  Bitbucket Cloud (since 2023) and Jira Cloud (webhooks registered with a ``secret``) the same
  value in ``X-Hub-Signature``.
* :func:`token` — GitLab: ``X-Gitlab-Token`` is the secret itself.
* :func:`standard` — GitLab's signed format (Standard Webhooks): ``webhook-signature`` holds
  one or more space-separated ``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.
  <body>">``; a secret written ``whsec_<base64>`` is base64-decoded into the key, any other
  value is the key as is. :func:`fresh` applies the 5-minute tolerance to the timestamp.

Every candidate secret (current, previous) is tried with :func:`hmac.compare_digest`; none of
these functions logs, raises with, or returns a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

TOLERANCE_SECONDS = 300
_SIGNING_PREFIX = b"whsec_"


def _ascii(value: str) -> bytes:
    return value.encode("utf-8", "replace")


def hmac_hex(body: bytes, header: str, prefix: str, secrets: Iterable[bytes]) -> bool:
    """True if ``header`` is ``prefix`` + the hex HMAC-SHA256 of ``body`` under one secret."""
    given = _ascii(header)
    results = [hmac.compare_digest(
        _ascii(prefix + hmac.new(secret, body, hashlib.sha256).hexdigest()), given)
        for secret in secrets]
    return any(results)


def token(header: str, secrets: Iterable[bytes]) -> bool:
    """True if ``header`` equals one of the secrets."""
    given = _ascii(header)
    return any([hmac.compare_digest(secret, given) for secret in secrets])


def signing_key(secret: bytes) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_<base64>`` decoded, else as is)."""
    if secret.startswith(_SIGNING_PREFIX):
        try:
            return base64.b64decode(secret[len(_SIGNING_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            return secret
    return secret


def standard(body: bytes, message_id: str, timestamp: str, header: str,
             secrets: Iterable[bytes]) -> bool:
    """True if one ``v1,<base64>`` entry of ``header`` signs ``id.timestamp.body``."""
    signed = _ascii(f"{message_id}.{timestamp}.") + body
    given = [_ascii(part[3:]) for part in header.split() if part.startswith("v1,")]
    results = []
    for secret in secrets:
        digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
        expected = base64.b64encode(digest)
        results += [hmac.compare_digest(expected, candidate) for candidate in given]
    return any(results)


def fresh(timestamp: str, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True if ``timestamp`` (integer Unix seconds) is within ``tolerance`` of ``now``."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= tolerance
