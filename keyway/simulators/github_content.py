"""GitHub's secondary rate limit on content creation, as the simulator enforces it.

GitHub's REST documentation ("Rate limits for the REST API", *About secondary rate limits*):
in general no more than 80 content-generating requests per minute and no more than 500 per
hour. The simulator counts every comment a user creates (``POST …/issues/{n}/comments``) in
two sliding windows per user and refuses one over either with GitHub's secondary-limit answer:
403, ``You have exceeded a secondary rate limit…`` with the documentation link, and
``Retry-After`` — the seconds until the oldest counted creation leaves the full window. A
refused request creates nothing and is not counted. :attr:`ContentLimits.refused` counts the
refusals (a paced client gets none).
"""

from __future__ import annotations

import math
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Callable

from werkzeug.wrappers import Response

from keyway.simulators.github_api import COMMON_HEADERS, DOCS
from keyway.simulators.wire import json_response

PER_MINUTE, PER_HOUR = 80, 500
LIMITS_DOCS = f"{DOCS}/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = f"{LIMITS_DOCS}#about-secondary-rate-limits"
SECONDARY = ("You have exceeded a secondary rate limit. Please wait a few minutes before you "
             "try again. If you reach out to GitHub Support for help, please include the "
             "request ID {}.")


class ContentLimits:
    """Per-user sliding windows of content creation (see the module docstring)."""

    def __init__(self, clock: Callable[[], float], per_minute: int = PER_MINUTE,
                 per_hour: int = PER_HOUR) -> None:
        self.clock = clock
        self.windows = ((per_minute, 60.0), (per_hour, 3600.0))
        self._created: dict[object, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.refused = 0

    def admit(self, user_id: object) -> int | None:
        """Count one creation by ``user_id`` now (None), or the seconds to wait (refused)."""
        with self._lock:
            now, created = self.clock(), self._created[user_id]
            while created and created[0] <= now - 3600.0:
                created.popleft()
            waits = []
            for limit, span in self.windows:
                inside = [t for t in created if t > now - span]
                if len(inside) >= limit:
                    waits.append(inside[len(inside) - limit] + span - now)
            if waits:
                self.refused += 1
                return max(1, math.ceil(max(waits)))
            created.append(now)
            return None

    def created(self, user_id: object) -> int:
        """Creations by ``user_id`` counted in the last hour."""
        with self._lock:
            now = self.clock()
            return sum(1 for t in self._created[user_id] if t > now - 3600.0)


def secondary_limit_answer(retry_after: int, rate_headers: dict[str, str]) -> Response:
    """GitHub's secondary-rate-limit refusal: 403, its message and link, ``Retry-After``."""
    request_id = secrets.token_hex(8).upper()
    return json_response({"message": SECONDARY.format(request_id),
                          "documentation_url": SECONDARY_DOCS, "status": "403"}, 403,
                         {**COMMON_HEADERS, **rate_headers, "Retry-After": str(retry_after),
                          "X-GitHub-Request-Id": request_id})
