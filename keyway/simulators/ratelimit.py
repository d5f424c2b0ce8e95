"""A fixed-window request budget per account, and API answers metered against it.

GitHub's primary limit (5,000 requests an hour per user) and GitLab's (2,000 a minute per user
on gitlab.com) are both modelled as one window per account id, shared by every token of that
account. A 304 answer spends nothing (GitHub documents this; the issue asks it of both).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.wire import conditional_json


@dataclass(frozen=True)
class Budget:
    """A rate-limit window as seen after a request: reset is in epoch seconds."""

    limit: int
    remaining: int
    used: int
    reset: int


class RateLimiter:
    """Fixed-window request budget per key (an account id), shared by all its tokens."""

    def __init__(self, limit: int, window: int, clock: Callable[[], float]) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._used: dict[object, tuple[int, int]] = {}  # key -> (window start, used)
        self._lock = threading.Lock()

    def _current(self, key: object) -> tuple[int, int]:
        start = int(self.clock()) // self.window * self.window
        seen_start, used = self._used.get(key, (start, 0))
        return (start, used) if seen_start == start else (start, 0)

    def _budget(self, start: int, used: int) -> Budget:
        return Budget(self.limit, max(self.limit - used, 0), used, start + self.window)

    def peek(self, key: object) -> Budget:
        """The budget without spending anything (what a 304 reports)."""
        with self._lock:
            return self._budget(*self._current(key))

    def spend(self, key: object, cost: int = 1) -> Budget:
        """Count ``cost`` requests against ``key`` and return the budget after them."""
        with self._lock:
            start, used = self._current(key)
            self._used[key] = (start, used + cost)
            return self._budget(start, used + cost)

    def set_remaining(self, key: object, remaining: int) -> None:
        """Knob: leave ``remaining`` requests in ``key``'s current window."""
        with self._lock:
            start, _ = self._current(key)
            self._used[key] = (start, self.limit - remaining)


def metered_json(request: Request, limiter: RateLimiter, key: object,
                 produce: Callable[[], tuple[Any, dict[str, str]] | Response],
                 headers_of: Callable[[Budget], dict[str, str]],
                 exhausted: Callable[[Budget], Response]) -> Response:
    """Answer an API call against ``key``'s budget: ``exhausted`` when none is left, else
    ``produce``'s payload as :func:`conditional_json`. Every answer but a 304 spends one
    request; every answer carries ``headers_of`` the budget after it."""
    budget = limiter.peek(key)
    if budget.remaining <= 0:
        response = exhausted(budget)
    else:
        result = produce()
        response = result if isinstance(result, Response) else conditional_json(request, *result)
        budget = limiter.peek(key) if response.status_code == 304 else limiter.spend(key)
    response.headers.update(headers_of(budget))
    return response
