"""The keyway error tree: one place that says what each failure means.

Every error keyway raises on purpose derives from :class:`KeywayError`. Each class carries one
HTTP status (for HTTPS functions, rendered as ``application/problem+json``) and one retry
decision (for Pub/Sub handlers: retryable → raise so the message is redelivered with backoff;
permanent → log the stable ``key`` and acknowledge).

::

    KeywayError                      500  retry
    ├── ConfigError                  500  permanent   bad or missing configuration
    ├── RetryableError               503  retry       transient; try again later
    │   ├── UnavailableError         503  retry       a backend (store, bus, KMS, secrets) is down
    │   └── ContentionError          503  retry       a transaction lost too many races
    ├── PermanentError               400  permanent   retrying cannot help
    │   ├── InvalidInput             400  permanent   malformed request or message
    │   ├── NotFound                 404  permanent   no such record (or not yours)
    │   ├── Forbidden                403  permanent   authenticated but not allowed
    │   ├── PolicyViolation          403  permanent   the policy table forbids this message
    │   ├── Conflict                 409  permanent   state does not allow this now
    │   └── NotImplementedYet        501  permanent   a route whose behaviour is not built
    └── CryptoError                  500  permanent   any decrypt or unwrap failure (opaque)

An HTTP function answers a ``RetryableError`` (a backend or the bus unavailable, a missing
topic) with 503 and ``Retry-After: <retry_after>`` (30 s), never a 404.

Vendor exceptions (google.api_core, sqlite3, requests) are translated at the adapter boundary
with ``raise … from e`` so callers only ever see this tree. Messages never contain secrets.
"""

from __future__ import annotations


class KeywayError(Exception):
    """Base of every deliberate keyway failure."""

    status: int = 500
    retryable: bool = True
    key: str = "keyway.error"
    title: str = "Internal error"

    def __init__(self, detail: str = "", *, key: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if key is not None:
            self.key = key


class ConfigError(KeywayError):
    status, retryable, key, title = 500, False, "config.invalid", "Invalid configuration"


class RetryableError(KeywayError):
    status, retryable, key, title = 503, True, "retryable", "Temporarily unavailable"
    retry_after: int = 30  # seconds; HTTP functions send it as ``Retry-After`` with the 503


class UnavailableError(RetryableError):
    key, title = "backend.unavailable", "A backend is unavailable"


class ContentionError(RetryableError):
    key, title = "store.contention", "Too much contention; try again"


class PermanentError(KeywayError):
    status, retryable, key, title = 400, False, "permanent", "Request cannot be processed"


class InvalidInput(PermanentError):
    key, title = "input.invalid", "Invalid input"


class NotFound(PermanentError):
    status, key, title = 404, "not_found", "Not found"


class Forbidden(PermanentError):
    status, key, title = 403, "forbidden", "Forbidden"


class PolicyViolation(PermanentError):
    status, key, title = 403, "policy.violation", "Refused by the component policy"


class Conflict(PermanentError):
    status, key, title = 409, "conflict", "Conflict"


class NotImplementedYet(PermanentError):
    status, key, title = 501, "not_implemented", "Not implemented"


class CryptoError(KeywayError):
    """Every decryption, unwrap or envelope failure. Says nothing about why, on purpose."""

    status, retryable, key, title = 500, False, "crypto.failed", "Cryptographic operation failed"

    def __init__(self, detail: str = "") -> None:  # detail is ignored: the error stays opaque
        super().__init__("cryptographic operation failed")
