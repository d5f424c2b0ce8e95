"""Translate google.api_core exceptions into keyway's error tree at the adapter boundary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from google.api_core import exceptions as gexc

from shared.errors import (
    ContentionError,
    CryptoError,
    Forbidden,
    InvalidInput,
    KeywayError,
    NotFound,
    UnavailableError,
)

T = TypeVar("T")

_RETRYABLE = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.ResourceExhausted,
    gexc.GatewayTimeout,
    gexc.BadGateway,
    gexc.RetryError,
)


def translate(error: Exception, what: str) -> KeywayError:
    """Map a vendor exception to a keyway error. ``what`` names the operation, never a value."""
    if isinstance(error, gexc.Aborted):
        return ContentionError(f"{what}: transaction aborted")
    if isinstance(error, gexc.NotFound):
        return NotFound(f"{what}: not found")
    if isinstance(error, gexc.PermissionDenied | gexc.Unauthenticated):
        return Forbidden(f"{what}: permission denied")
    if isinstance(error, gexc.FailedPrecondition) and "requires an index" in str(error):
        # A composite index missing or still building after an apply: retry, not drop.
        return UnavailableError(f"{what}: the query's composite index is not ready")
    if isinstance(error, gexc.InvalidArgument | gexc.FailedPrecondition | gexc.BadRequest):
        return InvalidInput(f"{what}: rejected by the service")
    if isinstance(error, _RETRYABLE):
        return UnavailableError(f"{what}: service unavailable")
    if isinstance(error, gexc.GoogleAPIError):
        return UnavailableError(f"{what}: {type(error).__name__}")
    return UnavailableError(f"{what}: {type(error).__name__}")


@contextmanager
def boundary(what: str, *, crypto: bool = False) -> Iterator[None]:
    """``with boundary("firestore.get"):`` re-raises vendor errors as keyway errors.

    With ``crypto=True`` a rejected ciphertext becomes the opaque ``CryptoError`` while an
    outage stays a retryable ``UnavailableError`` (fail closed, retry later).
    """
    try:
        yield
    except KeywayError:
        raise
    except (gexc.GoogleAPIError, gexc.RetryError) as e:
        translated = translate(e, what)
        if crypto and isinstance(translated, InvalidInput | NotFound):
            raise CryptoError() from e
        raise translated from e
    except (ConnectionError, TimeoutError, OSError) as e:
        raise UnavailableError(f"{what}: connection failed") from e


def call(what: str, fn: Callable[[], T]) -> T:
    with boundary(what):
        return fn()
