"""Webhook rejections: the error tree's answers for a request that must not be processed.

:class:`Unauthorized` (401), :class:`PayloadTooLarge` (413) and :class:`MethodNotAllowed`
(405) extend :class:`~shared.errors.PermanentError` — retrying the same request cannot help —
with the HTTP statuses the webhook functions need; a malformed body is an
:class:`~shared.errors.InvalidInput` (400) and an unknown connection a
:class:`~shared.errors.NotFound` (404). Each rejection carries one stable key,
``webhook.<provider>.<reason>`` (:func:`key`), which :func:`shared.entry.http_function` logs
once and renders as problem+json. Details name what failed, never a secret or a signature.
"""

from __future__ import annotations

from shared.errors import PermanentError

OUTCOMES = ("accepted", "duplicate",  # acknowledged (202)
            "too_large", "missing_signature", "invalid_signature", "stale_timestamp",
            "token_lifetime",
            "invalid_json", "unknown_connection", "not_found", "method_not_allowed",  # rejected
            "secret_missing",  # misconfigured (500)
            "release_failed")  # a claim not deleted after a failed publish (logged, recovered)


def key(provider: str, reason: str) -> str:
    """The stable log key of one pipeline outcome, e.g. ``webhook.github.invalid_signature``."""
    if reason not in OUTCOMES:
        raise ValueError(f"unknown webhook reason {reason!r}")
    return f"webhook.{provider}.{reason}"


class Unauthorized(PermanentError):
    status, key, title = 401, "webhook.unauthorized", "Unauthorized"


class PayloadTooLarge(PermanentError):
    status, key, title = 413, "webhook.too_large", "Payload too large"


class MethodNotAllowed(PermanentError):
    status, key, title = 405, "webhook.method_not_allowed", "Method not allowed"
