"""What can go wrong talking to a provider, as branches of :mod:`shared.errors`' tree.

::

    PolicyViolation (403, permanent)
    └── EgressRefused          egress.refused          refused BEFORE a byte leaves: a template
                                                       not in the allowlist, a path that does not
                                                       match it, a next URL elsewhere, http, a
                                                       GraphQL document or variables not vetted
    RetryableError (503, retry)
    ├── RateLimited            provider.rate_limited   429 / rate-limited 403 / GraphQL
    │                                                  RATE_LIMITED; ``retry_at`` says when
    │                                                  (Retry-After, else reset, else +60 s)
    ├── BudgetExhausted        budget.exhausted        the shared token budget refused to spend
    │                                                  (reserve reached or concurrency cap full)
    ├── MalformedResponse      provider.malformed      invalid JSON, a body over the size cap, a
    │                                                  GraphQL answer without data
    └── UnavailableError
        └── ProviderUnavailable provider.unavailable   5xx, timeouts, connection errors after
                                                       the client's retries
    PermanentError (400, permanent)
    ├── TokenRejected          provider.token_rejected 401: the token is invalid or revoked
    ├── NotFoundAtProvider     provider.not_found      404 / 410 / GraphQL NOT_FOUND without data
    └── ProviderRefused        provider.refused        any other 4xx or GraphQL error, or a
        │                                              redirect (never followed: it could lead
        │                                              off the allowlist)
        └── InsufficientScope  provider.insufficient_scope  a 401/403 saying the token lacks
                                                       a scope the endpoint needs (GitLab
                                                       ``insufficient_scope``, Jira ``scope does
                                                       not match``, Bitbucket ``privilege
                                                       scopes``): a new consent, not a refresh

A part of a sync (one child list: reviews, notes, approvals, participants, comments) that the
provider refuses permanently does not fail the sync: :func:`unavailable_reason` names why, in
the vocabulary of :mod:`shared.fetch.status` — ``permission`` (403, GraphQL ``FORBIDDEN``),
``not_found`` (404, 410, GraphQL ``NOT_FOUND`` without data, a GraphQL endpoint that answers
404) or ``refused`` (any other permanent refusal). ``TokenRejected``, ``InsufficientScope`` and
``EgressRefused`` are about the whole connection (or keyway itself) and have no such reason:
they still fail the run.

Retry decisions: ``RateLimited`` and ``BudgetExhausted`` carry ``retry_at``; callers reschedule
work for then rather than retrying in-process (never spin). Messages name the provider, the
endpoint template and the HTTP status (or GraphQL error types) only: never a token, a header
value or a response body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.errors import PermanentError, PolicyViolation, RetryableError, UnavailableError


class EgressRefused(PolicyViolation):
    """A request that would leave the metadata allowlist; raised before anything is sent."""

    key, title = "egress.refused", "Request refused by the metadata-only egress policy"


class _RetryAt(RetryableError):
    """A retryable error that knows when trying again makes sense."""

    def __init__(self, detail: str, retry_at: datetime, *, key: str | None = None) -> None:
        super().__init__(detail, key=key)
        self.retry_at = retry_at

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.detail, self.retry_at), {"key": self.key}


class RateLimited(_RetryAt):
    """The provider said to slow down (429, or 403 with Retry-After / no remaining quota /
    a secondary rate limit). Not retried in-process: reschedule at ``retry_at``."""

    key, title = "provider.rate_limited", "The provider rate limit was reached"


class BudgetExhausted(_RetryAt):
    """The token's shared budget refused a request: its reserve is reached (until the reset,
    ``retry_at``) or it already has ``max_concurrent`` requests in flight (a few seconds)."""

    key, title = "budget.exhausted", "The token's request budget is spent"


class TokenRejected(PermanentError):
    status, key, title = 401, "provider.token_rejected", "The provider rejected the token"


class ProviderUnavailable(UnavailableError):
    key, title = "provider.unavailable", "The provider is unavailable"


class NotFoundAtProvider(PermanentError):
    status, key, title = 404, "provider.not_found", "Not found at the provider"


class MalformedResponse(RetryableError):
    key, title = "provider.malformed", "The provider answered with a malformed body"


class ProviderRefused(PermanentError):
    """Any other refusal (400, 403 without rate-limit signs, 409, 422…) or a redirect;
    ``provider_status`` is the provider's HTTP status (never its body); ``types`` the GraphQL
    error types of a GraphQL refusal (answered with HTTP 200)."""

    status, key, title = 502, "provider.refused", "The provider refused the request"

    def __init__(self, detail: str = "", *, key: str | None = None,
                 provider_status: int | None = None, types: tuple[str, ...] = ()) -> None:
        super().__init__(detail, key=key)
        self.provider_status, self.types = provider_status, tuple(types)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.detail,), {"key": self.key, "types": self.types,
                                            "provider_status": self.provider_status}


class InsufficientScope(ProviderRefused):
    """The token was granted too few scopes for this endpoint (see :mod:`._scopes`): the
    provider table's scopes, or the consent the user gave, do not cover what keyway called.
    Refreshing cannot help; the connection or identity must be made again."""

    key, title = "provider.insufficient_scope", "The token lacks a scope this request needs"


def unavailable_reason(error: PermanentError) -> str | None:
    """Why a part cannot be read (``permission`` | ``not_found`` | ``refused``), or ``None``
    when ``error`` is not the provider refusing that part (see the module docstring)."""
    if isinstance(error, NotFoundAtProvider):
        return "not_found"
    if isinstance(error, InsufficientScope):  # the whole token is short of a scope: fail
        return None
    if isinstance(error, ProviderRefused):
        forbidden = error.provider_status == 403 or "FORBIDDEN" in error.types
        return "permission" if forbidden else "refused"
    return None


def reason_or_raise(error: PermanentError) -> str:
    """:func:`unavailable_reason` of ``error``, which is raised again when it has none."""
    reason = unavailable_reason(error)
    if reason is None:
        raise error
    return reason
