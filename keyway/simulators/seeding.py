"""The seeding machinery every provider's ``seed_activity`` shares: the count check, the
default labels, threads spread over the seeded year and round-robin over the new
repositories, child items (comments, reviews, approvals) placed under random parents in
creation order, the per-state thread index, and loading seeded items into their
:class:`~.activity.Collection` indexes.

Providers keep only what differs (item shapes, numbering, states). Every helper draws from the
caller's ``random.Random`` in a fixed order, so seeding stays deterministic per seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import TypeVar

from keyway.simulators.activity import DEFAULT_LABELS, QUIET, YEAR, Collection, Item, spread

A = TypeVar("A")  # a provider's per-repository (or per-project) activity
K = TypeVar("K")  # a provider's thread kind


def threads_by_state(ident: str = "id") -> Collection:
    """An empty index of threads keyed by ``ident`` with a bucket per ``state`` (so
    ``state=open`` is one range of one sorted list)."""
    return Collection(ident, itemgetter("state"))


def check_counts(repos: int, prs: int, issues: int, *others: int,
                 container: str = "repository") -> None:
    """Refuse negative counts, and threads without a ``container`` to hold them."""
    if min(repos, prs, issues, *others) < 0 or (repos == 0 and prs + issues > 0):
        raise ValueError(f"counts must be >= 0 and activity needs a {container}")


def label_specs(count: int) -> Iterator[tuple[str, str, str, bool]]:
    """``count`` labels as (name, hex colour, description, is a default label): GitHub's
    defaults first, then ``area-N`` labels with spread-out colours."""
    for i in range(count):
        if i < len(DEFAULT_LABELS):
            yield (*DEFAULT_LABELS[i], True)
        else:
            yield (f"area-{i + 1}", f"{(i * 2654435761) % 0xFFFFFF:06x}", f"Area {i + 1}",
                   False)


def seeded_times(rng: random.Random, count: int, now: int) -> list[int]:
    """``count`` sorted creation instants in the year before ``now`` (none in the last hour)."""
    return spread(rng, count, now - YEAR, now - QUIET)


def deal_threads(acts: list[A], kinds: list[K], rng: random.Random,
                 now: int) -> Iterator[tuple[A, K, int]]:
    """Shuffle ``kinds`` (one per thread), give each a creation instant in time order and
    deal them round-robin over ``acts``: (act, kind, created) per thread."""
    rng.shuffle(kinds)
    times = seeded_times(rng, len(kinds), now)
    for i, (kind, created) in enumerate(zip(kinds, times, strict=True)):
        yield acts[i % len(acts)], kind, created


def pick(rng: random.Random, parents: list[Item], count: int) -> Iterator[Item]:
    """``count`` random parents, drawn lazily (each draw interleaves with what the caller
    draws per parent); nothing when there are no parents."""
    return (rng.choice(parents) for _ in range(count if parents else 0))


def timed(rng: random.Random, parents: Iterable[Item], now: int) -> list[tuple[int, Item]]:
    """Each parent with a child's creation instant: after the parent's, before ``now - 1 h``."""
    return [(rng.randint(parent["created"], now - QUIET), parent) for parent in parents]


def children(rng: random.Random, parents: list[Item], count: int,
             now: int) -> list[tuple[int, Item]]:
    """(created, parent) for ``count`` children under random parents, in creation order, so
    ids handed out in this order ascend with time (as every provider's do)."""
    return sorted(timed(rng, pick(rng, parents, count), now), key=itemgetter(0))


def bump(parent: Item, moment: int) -> None:
    """A new child moves its parent's ``updated`` forward (never back)."""
    parent["updated"] = max(parent["updated"], moment)


def load(items: Iterable[Item], into: Callable[[Item], Collection]) -> None:
    """Index seeded items once ``updated`` is final: each goes to the collection ``into``
    names for it, one bulk :meth:`~.activity.Collection.load` per collection."""
    grouped: dict[int, tuple[Collection, list[Item]]] = {}
    for item in items:
        target = into(item)
        grouped.setdefault(id(target), (target, []))[1].append(item)
    for target, group in grouped.values():
        target.load(group)
