"""The base of every provider's seeded-activity store (:class:`ActivityStore`): the lock, the
clock, the seeded users, the id counters, the ``_where`` index (kind → id → the repository or
project holding the item), the :attr:`~ActivityStore.deleted` record, and the two knobs tests
use, :meth:`~ActivityStore.touch` and :meth:`~ActivityStore.delete`.

The knobs are fixed skeletons (check the kind, take the lock, choose or find, record); what a
provider does differently is in a few hooks with one signature each: ``_item`` (an item by
kind and id), ``_touched`` (re-date what an edit moves), ``_remove`` (take an item and what
hangs under it out of the indexes). Bitbucket, whose items are found by ``<full name>#<id>``
keys instead of ids, also overrides ``_touchable``, ``_locate`` and ``_forget``.

Each provider's ``<provider>_seed`` class (``seed_activity``) subclasses the store and its
``<provider>_data`` class completes it (the API's reads and writes, the hooks).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from keyway.simulators.activity import KINDS, TOUCHABLE, Deletion, Item, choose


class Holder(Protocol):
    """A repository's or project's activity: all the store needs is its name."""

    @property
    def name(self) -> str: ...


A = TypeVar("A", bound=Holder)


class ActivityStore(Generic[A]):
    """Shared bookkeeping and the ``touch`` / ``delete`` knobs; subclasses fill the hooks."""

    KINDS: tuple[str, ...] = KINDS  # what ``delete`` takes
    TOUCHABLE: tuple[str, ...] = TOUCHABLE  # what ``touch`` takes
    TEXT = "body"  # the field an edit changes on a comment (threads change their title)

    def __init__(self, clock: Callable[[], float], users: list[Item],
                 ids: dict[str, Iterator[int]]) -> None:
        self.clock, self.users, self._ids = clock, users, ids
        self.deleted: list[Deletion] = []
        self._where: dict[str, dict[Any, A]] = {kind: {} for kind in self.KINDS}
        self._touches = 0
        self.lock = threading.RLock()

    def touch(self, kind: str, count: int) -> list:
        """Edit ``count`` seeded-order-random items of ``kind``: the title (a thread) or the
        text (a comment) is marked edited and ``updated`` becomes now. Returns their ids."""
        if kind not in self.TOUCHABLE:
            raise ValueError(f"touch: kind must be one of {self.TOUCHABLE}")
        with self.lock:
            self._touches += 1
            chosen = choose(random.Random(f"touch:{self._touches}"),
                            sorted(self._touchable(kind)), count)
            now = int(self.clock())
            for key in chosen:
                act, item = self._locate(kind, key)
                name = "title" if kind in ("pull", "issue") else self.TEXT
                item[name] = item[name].split(" (edited")[0] + f" (edited {now})"
                self._touched(act, kind, item, now)
            return chosen

    def delete(self, kind: str, key: Any) -> bool:
        """Remove an item of ``kind`` (a thread takes what hangs under it along). Every removal
        is appended to :attr:`deleted`; removed items vanish from every list. False if
        unknown."""
        if kind not in self.KINDS:
            raise ValueError(f"delete: kind must be one of {self.KINDS}")
        with self.lock:
            act = self._forget(kind, key)
            if act is None:
                return False
            now = int(self.clock())
            self.deleted += [Deletion(k, i, act.name, now)
                             for k, i in self._remove(act, kind, key, now)]
            return True

    # ---- hooks ------------------------------------------------------------------------------
    def _touchable(self, kind: str) -> Iterable[Any]:
        """The ids ``touch`` chooses from."""
        return self._where[kind]

    def _locate(self, kind: str, key: Any) -> tuple[A, Item]:
        """An item and its holder, by id."""
        act = self._where[kind][key]
        return act, self._item(act, kind, key)

    def _forget(self, kind: str, key: Any) -> A | None:
        """Drop an item from ``_where``; its holder, or None when unknown."""
        return self._where[kind].pop(key, None)

    def _item(self, act: A, kind: str, ident: int) -> Item:
        raise NotImplementedError

    def _touched(self, act: A, kind: str, item: Item, now: int) -> None:
        """``item`` was just edited at ``now``: move it (and its thread) in the indexes."""
        raise NotImplementedError

    def _remove(self, act: A, kind: str, key: Any, now: int) -> list[tuple[str, int]]:
        """Take the item out of ``act``; every (kind, id) removed with it."""
        raise NotImplementedError


def drop_label(holder: Any, threads: Iterable[Item], ident: int) -> None:
    """A label is deleted: off the holder's list and off every thread that wore it."""
    holder.labels = [label for label in holder.labels if label["id"] != ident]
    for thread in threads:
        thread["labels"] = [label for label in thread["labels"] if label["id"] != ident]


def drop_by_id(lists: Iterable[list[Item]], ident: int) -> None:
    """Remove the item with id ``ident`` from each of ``lists`` (in place)."""
    for items in lists:
        items[:] = [item for item in items if item["id"] != ident]
