"""Reading a provider answer's rate-limit headers, with the names and reset style the provider
table gives (re-exported by :mod:`shared.fetch.budget`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from shared.clock import parse_iso
from shared.providers.schema import RateLimitSpec

DEFAULT_RETRY_AFTER = timedelta(seconds=60)  # a rate-limited answer that says nothing else
RESOURCE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _reset_at(rate: RateLimitSpec, headers: Mapping[str, str], now: datetime) -> datetime | None:
    value = headers.get(rate.reset_header) if rate.reset_header else None
    try:
        if value is None:
            return None
        if rate.reset_style == "epoch_seconds":
            return datetime.fromtimestamp(float(value), UTC)
        if rate.reset_style == "seconds_from_now":
            return now + timedelta(seconds=float(value))
        return parse_iso(value)
    except (ValueError, OverflowError, OSError):
        return None


def read_rate_headers(rate: RateLimitSpec, headers: Mapping[str, str],
                      now: datetime) -> tuple[int, int, datetime] | None:
    """``(limit, remaining, reset_at)`` from an answer's headers, or None when absent (always
    for a provider that sends no remaining quota)."""
    if rate.remaining_header is None:
        return None
    try:
        limit, remaining = int(headers[rate.limit_header]), int(headers[rate.remaining_header])
    except (KeyError, ValueError):
        return None
    reset = _reset_at(rate, headers, now)
    return None if reset is None else (limit, remaining, reset)


def answer_resource(rate: RateLimitSpec, headers: Mapping[str, str]) -> str | None:
    """The rate-limit resource an answer names (``core``, ``graphql``), if it names a
    well-formed one."""
    if rate.resource_header is None:
        return None
    value = (headers.get(rate.resource_header) or "").strip().lower()
    return value if RESOURCE.match(value) else None


def is_rate_limited(rate: RateLimitSpec, status: int, headers: Mapping[str, str],
                    body: bytes | None) -> bool:
    """429, or 403 with ``Retry-After``, no remaining quota or a secondary-limit message."""
    return status == 429 or status == 403 and (
        rate.retry_after_header in headers
        or bool(rate.remaining_header)
        and headers.get(rate.remaining_header, "").strip() == "0"
        or b"secondary rate limit" in (body or b"").lower())


def retry_at(rate: RateLimitSpec, headers: Mapping[str, str], now: datetime) -> datetime:
    """When to try again: ``Retry-After`` (seconds or HTTP date), else the reset, else +60 s."""
    value = headers.get(rate.retry_after_header, "").strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    if value:
        try:
            return max(parsedate_to_datetime(value).astimezone(UTC), now)
        except (TypeError, ValueError):
            pass
    reset = _reset_at(rate, headers, now)
    return reset if reset is not None and reset > now else now + DEFAULT_RETRY_AFTER
