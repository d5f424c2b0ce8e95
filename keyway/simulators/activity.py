"""Provider-neutral bookkeeping for the simulators' seeded activity (pull/merge requests,
issues, comments): time-ordered indexes answered by bisect, so a page costs O(page + log n)
whatever the repository's size.

A :class:`Collection` holds one kind of item of one repository (or project). Items are plain
dicts with integer epoch seconds under ``created`` and ``updated`` and a unique integer under
the collection's ``ident`` key. Each collection keeps ``(time, ident)`` pairs sorted per order
(``created``, ``updated``) and per bucket (``all`` and every state), so ``state=open``,
``sort=updated`` and ``since=`` are all ranges of one sorted list. The one case answered by a
scan is ``since`` combined with creation order (neither provider can index that either).

Times on the wire are UTC; :func:`parse_time` reads the ISO 8601 forms clients send.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Item = dict[str, Any]
ORDERS = ("created", "updated")
YEAR = 365 * 86_400
KINDS = ("pull", "issue", "comment", "review_comment", "review", "label")
TOUCHABLE = ("pull", "issue", "comment", "review_comment")
QUIET = 3600  # seeded activity ends this long before "now"
DEFAULT_LABELS = (
    ("bug", "d73a4a", "Something isn't working"),
    ("enhancement", "a2eeef", "New feature or request"),
    ("documentation", "0075ca", "Improvements or additions to documentation"),
    ("question", "d876e3", "Further information is requested"),
    ("good first issue", "7057ff", "Good for newcomers"),
    ("help wanted", "008672", "Extra attention is needed"),
    ("duplicate", "cfd3d7", "This issue or pull request already exists"),
    ("invalid", "e4e669", "This doesn't seem right"),
    ("wontfix", "ffffff", "This will not be worked on"),
)
VERBS = ("Fix", "Add", "Refactor", "Document", "Speed up", "Remove", "Support", "Test")
NOUNS = ("login flow", "cache layer", "pagination", "webhook retries", "CLI flags",
         "error messages", "config loader", "rate limiter", "search index", "exports")
PATHS = ("src/app.py", "src/api/routes.py", "src/models.py", "tests/test_api.py", "README.md")


def sha(*parts: object) -> str:
    """A stable 40-hex "commit" id for the given parts."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:40]


def parse_time(value: str | None) -> int | None:
    """ISO 8601 (``2024-05-01T10:00:00Z``, an offset, a fraction or a bare date) → epoch
    seconds; None when absent or unreadable (providers then ignore the filter)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def iso(epoch: int, millis: bool = False) -> str:
    """Epoch seconds → ``2024-05-01T10:00:00Z`` (GitHub) or ``…:00.000Z`` (GitLab)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z" if millis else "%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Query:
    """One page request: bucket (``all`` or a state), order, direction, the ``updated >=
    since`` filter, and either an offset or a keyset position ``after`` = (time, ident)."""

    bucket: str = "all"
    order: str = "created"
    descending: bool = False
    since: int | None = None
    offset: int = 0
    limit: int = 30
    after: tuple[int, int] | None = None


@dataclass(frozen=True)
class Deletion:
    """An item removed through a knob, kept so tests can check a fetcher reconciled it."""

    kind: str
    id: int
    container: str  # the repository's full name or the project's path
    at: int  # epoch seconds


class Collection:
    """Items of one kind in one container, indexed by time for every order and bucket."""

    def __init__(self, ident: str = "id", bucket: Callable[[Item], str] | None = None) -> None:
        self.ident, self._bucket = ident, bucket
        self.items: dict[int, Item] = {}
        self._index: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def _buckets(self, item: Item) -> tuple[str, ...]:
        return ("all", self._bucket(item)) if self._bucket else ("all",)

    def load(self, items: Iterable[Item]) -> None:
        """Add many items at once (one sort per index instead of one insertion each)."""
        for item in items:
            self.items[item[self.ident]] = item
            for order in ORDERS:
                for bucket in self._buckets(item):
                    self._index.setdefault((order, bucket), []).append(
                        (item[order], item[self.ident]))
        for pairs in self._index.values():
            pairs.sort()

    def add(self, item: Item) -> None:
        self.items[item[self.ident]] = item
        for order in ORDERS:
            for bucket in self._buckets(item):
                insort(self._index.setdefault((order, bucket), []),
                       (item[order], item[self.ident]))

    def remove(self, ident: int) -> Item | None:
        item = self.items.pop(ident, None)
        if item is not None:
            for order in ORDERS:
                for bucket in self._buckets(item):
                    self._discard((order, bucket), (item[order], ident))
        return item

    def reindex(self, ident: int, old_updated: int) -> None:
        """Move an item whose ``updated`` changed (from ``old_updated``) in the indexes."""
        item = self.items[ident]
        for bucket in self._buckets(item):
            self._discard(("updated", bucket), (old_updated, ident))
            insort(self._index.setdefault(("updated", bucket), []), (item["updated"], ident))

    def _discard(self, key: tuple[str, str], pair: tuple[int, int]) -> None:
        pairs = self._index.get(key, [])
        at = bisect_left(pairs, pair)
        if at < len(pairs) and pairs[at] == pair:
            del pairs[at]

    def query(self, query: Query) -> tuple[list[Item], int]:
        """The page's items and how many match in all (before paging)."""
        pairs = self._index.get((query.order, query.bucket), [])
        lo, hi = 0, len(pairs)
        if query.since is not None and query.order == "updated":
            lo = bisect_left(pairs, (query.since, -1))
        elif query.since is not None:  # creation order filtered by update time: a scan
            pairs = [p for p in pairs if self.items[p[1]]["updated"] >= query.since]
            hi = len(pairs)
        total = hi - lo
        if query.after is not None and query.descending:
            hi = min(hi, bisect_left(pairs, query.after))
        elif query.after is not None:
            lo = max(lo, bisect_right(pairs, query.after))
        if query.descending:
            end = hi - query.offset
            chosen = pairs[max(end - query.limit, lo):max(end, lo)][::-1]
        else:
            start = lo + query.offset
            chosen = pairs[start:min(start + query.limit, hi)]
        return [self.items[ident] for _, ident in chosen], total

    def count(self, bucket: str = "all") -> int:
        """How many items are in ``bucket``."""
        return len(self._index.get(("created", bucket), []))

    def __len__(self) -> int:
        return len(self.items)


def spread(rng: random.Random, count: int, start: int, end: int) -> list[int]:
    """``count`` sorted random instants in ``[start, end]``."""
    return sorted(rng.randint(start, end) for _ in range(count))


def later(rng: random.Random, start: int, end: int, skew: float = 3.0) -> int:
    """An instant in ``[start, end]``, skewed towards ``start`` (most edits come early)."""
    return start + int((end - start) * rng.random() ** skew) if end > start else start


def choose(rng: random.Random, ids: list[int], count: int) -> list[int]:
    """``count`` distinct ids (all when fewer), in a seeded order."""
    return rng.sample(ids, min(count, len(ids)))
