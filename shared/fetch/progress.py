"""A sync run's progress, written to ``sync_status/<connection>.progress`` while it runs.

The walker reports each page it read and each list walk it finished (:mod:`shared.fetch.walk`,
``observer``); the run reports how many repositories each list applies to once the
repositories are known. The document, per list as the plan names it (``repositories``,
``pulls``, ``merge_requests``, ``issues``, ``labels``…)::

    {"items": 200, "pages": 2, "requests": 4, "pages_left": 3, "walking": true,
     "repositories_done": 1, "repositories": 4}

``items`` and ``pages`` read by this run, ``requests`` spent on them (children included),
``pages_left`` in the walk of that list now open — ``null`` when the provider does not say
(:mod:`shared.fetch.pages`) or the walk may stop early at its cursor, 0 when none is open —
and how many repositories' walks of it this sync round has finished (a continuation counts
those its round finished before; ``null`` for the connection-level ``repositories`` list and
until the repositories are known). Beside ``lists``: ``requests`` (this run),
``requests_per_second`` (this run's, measured), ``pages_left`` (the sum; ``null`` if one is
unknown), ``walks_left`` (list walks not opened yet), ``eta_seconds``,
``eta_is_lower_bound``, ``budget`` (``remaining``, ``reset_at`` of the token's REST budget) and
``updated_at``.

The ETA (:func:`eta`): requests left R = Σ over open walks of ``pages_left`` × this list's
requests per page so far (1 before its first page) + ``walks_left`` (each walk not opened yet
costs at least one request). At the measured pace p (requests per second of this run):
R ≤ S, the budget's spendable requests (``remaining`` − the fetch reserve), → R / p;
otherwise the run stops at the reserve and resumes at ``reset_at``: max(S / p, seconds to the
reset) + (R − S) / p, if R − S fits in one more window (``limit`` − reserve); else ``null``.
``null`` too while anything in R is unknown or nothing is measured yet. While walks are left
unopened R counts each at one request, so the ETA is a lower bound (``eta_is_lower_bound``).

Writes are throttled: at most one per page read and at most one per :data:`WRITE_INTERVAL`
(one store transaction each, only while this run holds the lease). :func:`shared.fetch.status.end`
drops ``progress``; the run's final per-list counts stay in ``last_run.lists``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.fetch.budget import TokenBudget
from shared.fetch.client import ApiResponse
from shared.fetch.pages import pages_left
from shared.fetch.plan import ListSpec
from shared.fetch.walk import Stats, page_items
from shared.ports import Ports

COLLECTION = "sync_status"
WRITE_INTERVAL = 5.0  # seconds between two progress writes at most


def eta(requests_left: int | None, pace: float | None, budget: dict[str, Any] | None,
        now: datetime) -> float | None:
    """Seconds to spend ``requests_left`` at ``pace`` within ``budget`` (module docstring)."""
    if requests_left is None or not pace:
        return None
    if requests_left <= 0:
        return 0.0
    remaining = (budget or {}).get("remaining")
    if remaining is None:
        return requests_left / pace
    reserve = int(budget.get("reserve") or 0)
    spendable = max(remaining - reserve, 0)
    if requests_left <= spendable:
        return requests_left / pace
    over, limit, reset_at = requests_left - spendable, budget.get("limit"), budget.get("reset_at")
    if limit is None or reset_at is None or over > limit - reserve:
        return None
    wait = max((parse_iso(reset_at) - now).total_seconds(), 0.0)
    return max(spendable / pace, wait) + over / pace


def _list() -> dict[str, Any]:
    return {"items": 0, "pages": 0, "requests": 0, "pages_left": 0, "walking": False,
            "repositories_done": None, "repositories": None}


class Progress:
    """One run's progress (module docstring); ``owner``: the run's sync lease."""

    def __init__(self, ports: Ports, connection: str, owner: str,
                 budget: TokenBudget | None = None, *, interval: float = WRITE_INTERVAL) -> None:
        self._ports, self._connection, self._owner = ports, connection, owner
        self._budget, self._interval = budget, interval
        self._started = ports.clock.monotonic()
        self._last_write: float | None = None
        self._stats = Stats()
        self._mark = 0  # stats.requests at the last event
        self._page_requests: dict[str, int] = {}
        self._connection_lists: set[str] = set()
        self._known = False  # the repositories are known
        self._pagination = ""
        self.lists: dict[str, dict[str, Any]] = {}

    def attach(self, stats: Stats, pagination: str) -> None:
        """Count with the run's ``stats`` (its ``lists`` become this run's per-list counts);
        ``pagination``: the provider's style (:mod:`shared.fetch.pages`)."""
        self._stats, self._mark, self._pagination = stats, stats.requests, pagination
        stats.lists = self.lists

    def repositories(self, counts: dict[str, int]) -> None:
        """How many repositories each list applies to (the repositories are known)."""
        self._known = True
        for name, count in counts.items():
            entry = self.lists.setdefault(name, _list())
            entry["repositories"] = count
            entry["repositories_done"] = entry["repositories_done"] or 0

    def page(self, spec: ListSpec, response: ApiResponse, exact: bool,
             repository_level: bool) -> None:
        """A page of ``spec`` was read and written; ``exact``: the walk reads to the end."""
        entry = self._entry(spec, repository_level)
        spent = self._spent()
        entry["items"] += 1 if spec.single else len(page_items(response.body, spec.items_key))
        entry["pages"] += 1
        entry["requests"] += spent
        self._page_requests[spec.name] = self._page_requests.get(spec.name, 0) + spent
        left = pages_left(self._pagination, response.headers, response.body)
        entry["pages_left"] = left if exact or left == 0 else None
        entry["walking"] = True
        self._maybe_write()

    def finished(self, spec: ListSpec, repository_level: bool) -> None:
        """A walk of ``spec`` finished (or was already finished in this round)."""
        entry = self._entry(spec, repository_level)
        entry["requests"] += self._spent()
        entry["pages_left"], entry["walking"] = 0, False
        if repository_level:
            entry["repositories_done"] = (entry["repositories_done"] or 0) + 1

    def _entry(self, spec: ListSpec, repository_level: bool) -> dict[str, Any]:
        if not repository_level:
            self._connection_lists.add(spec.name)
        return self.lists.setdefault(spec.name, _list())

    def _spent(self) -> int:
        spent, self._mark = self._stats.requests - self._mark, self._stats.requests
        return spent

    def _maybe_write(self) -> None:
        now = self._ports.clock.monotonic()
        if self._last_write is not None and now - self._last_write < self._interval:
            return
        self._last_write = now
        self.write()

    def document(self) -> dict[str, Any]:
        """The ``progress`` document as of now (module docstring)."""
        now = self._ports.clock.now()
        elapsed = self._ports.clock.monotonic() - self._started
        requests = self._stats.requests
        pace = requests / elapsed if requests and elapsed > 0 else None
        open_left = [e["pages_left"] for e in self.lists.values() if e["walking"]]
        known = None if None in open_left else sum(open_left)
        walks = self._walks_left()
        left = None if known is None or walks is None else walks + sum(
            e["pages_left"] * self._per_page(name) for name, e in self.lists.items()
            if e["walking"])
        budget = self._budget.snapshot() if self._budget is not None else None
        seconds = eta(left, pace, budget, now)
        return {"lists": {k: dict(v) for k, v in self.lists.items()}, "requests": requests,
                "requests_per_second": round(pace, 3) if pace else None,
                "pages_left": known, "walks_left": walks,
                "eta_seconds": None if seconds is None else round(seconds),
                "eta_is_lower_bound": bool(walks),
                "budget": {k: (budget or {}).get(k) for k in ("remaining", "reset_at")},
                "updated_at": isoformat(now)}

    def _per_page(self, name: str) -> float:
        pages = self.lists[name]["pages"]
        return self._page_requests.get(name, 0) / pages if pages else 1.0

    def _walks_left(self) -> int | None:
        """List walks of the repositories not opened yet; None until the repositories are
        known (or while the repositories list itself is walked)."""
        per_repository = {k: v for k, v in self.lists.items()
                          if k not in self._connection_lists}
        if not self._known or any(self.lists[k]["walking"] for k in self._connection_lists):
            return None
        if any(e["repositories"] is None for e in per_repository.values()):
            return None
        return sum(max(e["repositories"] - e["repositories_done"] - int(e["walking"]), 0)
                   for e in per_repository.values())

    def write(self) -> None:
        """Store the document, if this run still holds the lease (one transaction)."""
        progress = self.document()

        def put(tx) -> None:
            doc = tx.get(COLLECTION, self._connection)
            if doc is None or doc.get("state") != "running" or (
                    doc.get("lease") or {}).get("owner") != self._owner:
                return
            tx.put(COLLECTION, self._connection, {**doc, "progress": progress})

        self._ports.business.transaction(put)
