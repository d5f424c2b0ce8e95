"""Seeded GitHub activity as the simulator serves it: :class:`GitHubActivity` holds every
repository's pull requests, issues, comments, review comments, reviews and labels
(:mod:`.github_seed` makes them), answers the API's reads, takes its one write (a new issue
comment, a new review) and fills in the hooks of the ``touch`` and ``delete`` knobs
(:mod:`.activity_store`), whose removals are kept in :attr:`~GitHubActivity.deleted`.
Thread-safe; see :mod:`.activity` for the indexes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from keyway.simulators.activity import Item, Query
from keyway.simulators.activity_store import drop_by_id, drop_label
from keyway.simulators.github_api import GitHubData
from keyway.simulators.github_seed import FIRST_ID, GitHubSeeding, RepoActivity
from keyway.simulators.oauth_model import Account


class GitHubActivity(GitHubSeeding):
    """Every repository's activity, the users who author it and the deletion record."""

    def __init__(self, data: GitHubData, clock: Callable[[], float]) -> None:
        super().__init__(clock, [{"login": f"dev-{i:03d}", "id": 70_000_000 + i, "type": "User"}
                                 for i in range(1, 41)],
                         {kind: itertools.count(first) for kind, first in FIRST_ID.items()})
        self.data = data
        self.repos: dict[str, RepoActivity] = {}  # by lower-cased full name

    def forget_repository(self, full_name: str) -> None:
        """``full_name`` left the users' reach (transferred): its activity and every item of
        it leave the indexes, so no id (a pull request's node, ``touch``, ``delete``) finds
        them. Remove it from :attr:`data` too, under the same lock."""
        with self.lock:
            act = self.repos.pop(full_name.lower(), None)
            if act is None:
                return
            for index in self._where.values():
                for key in [key for key, holder in index.items() if holder is act]:
                    del index[key]

    # ---- reads (the API) ----------------------------------------------------------------------
    def find(self, owner: str, name: str) -> RepoActivity | None:
        """A repository's activity; repositories made by ``seed`` alone have none yet."""
        key = f"{owner}/{name}".lower()
        with self.lock:
            if key not in self.repos:
                repo = next((r for r in self.data.list() or []
                             if r["full_name"].lower() == key), None)
                if repo is None:
                    return None
                self.repos[key] = RepoActivity(repo)
            return self.repos[key]

    def page(self, act: RepoActivity, collection: str, query: Query) -> tuple[list[Item], int]:
        """A page of ``threads``, ``pulls``, ``comments`` or ``review_comments`` (copies)."""
        with self.lock:
            items, total = getattr(act, collection).query(query)
            return [self._copy(act, item) for item in items], total

    @staticmethod
    def _copy(act: RepoActivity, item: Item) -> Item:
        """A copy to render outside the lock; a comment learns whether its thread is a PR."""
        thread = act.by_number.get(item["number"], {}) if "pull_id" not in item else item
        return {**item, "on_pull": thread.get("pull_id") is not None}

    def listed(self, act: RepoActivity, what: str, number: int | None = None,
               since: int | None = None) -> list[Item] | None:
        """All of a small list: ``labels``, or a thread's ``comments`` / ``reviews``
        (None when the thread does not exist)."""
        with self.lock:
            if what == "labels":
                return [dict(label) for label in act.labels]
            if number not in act.by_number:
                return None
            if what == "reviews":
                return [dict(r) for r in act.reviews.get(number, [])]
            found = (act.comments.items[i] for i in act.conversation.get(number, []))
            return [self._copy(act, c) for c in found if since is None or c["updated"] >= since]

    def pull_by_id(self, pull_id: int) -> tuple[RepoActivity, Item] | None:
        """A pull request's repository and a copy of it, by its pull id (GraphQL nodes)."""
        with self.lock:
            act = self._where["pull"].get(pull_id)
            item = act.pulls.items.get(pull_id) if act is not None else None
            return None if act is None or item is None else (act, dict(item))

    def thread(self, act: RepoActivity, number: int) -> Item | None:
        """A copy of pull request or issue ``number``, if it exists."""
        with self.lock:
            found = act.by_number.get(number)
            return None if found is None else dict(found)

    # ---- writes (the API and the knobs) ---------------------------------------------------
    def add_comment(self, act: RepoActivity, number: int, author: Account,
                    body: str) -> Item | None:
        """A new issue comment by ``author`` (bumps the thread); None if no such thread."""
        with self.lock:
            thread = act.by_number.get(number)
            if thread is None:
                return None
            now = int(self.clock())
            kind = "Bot" if author.login.endswith("[bot]") else "User"
            item = {"id": next(self._ids["comment"]), "number": number, "repo": act.name,
                    "user": {"login": author.login, "id": author.id, "type": kind},
                    "body": body, "created": now, "updated": now}
            act.comments.add(item)
            act.conversation[number].append(item["id"])
            self._where["comment"][item["id"]] = act
            thread["comments"] += 1
            self._retime(act, "pull" if thread["pull_id"] else "issue", thread, now)
            return self._copy(act, item)

    def add_review(self, act: RepoActivity, number: int, state: str) -> Item | None:
        """A new review of pull request ``number`` by a seeded user, submitted now (bumps the
        pull request's ``updated_at``, as GitHub does); None if there is no such pull
        request."""
        with self.lock:
            thread = act.by_number.get(number)
            if thread is None or thread["pull_id"] is None:
                return None
            now = int(self.clock())
            item = {"id": next(self._ids["review"]), "number": number, "repo": act.name,
                    "user": self.users[len(act.reviews[number]) % len(self.users)],
                    "created": now, "updated": now, "state": state, "body": "New review."}
            act.reviews[number].append(item)
            self._where["review"][item["id"]] = act
            self._retime(act, "pull", thread, now)
            return dict(item)

    # ---- the knobs' hooks (activity_store): pull ids for ``pull``, else item ids -------------
    def _item(self, act: RepoActivity, kind: str, ident: int) -> Item:
        source = {"pull": act.pulls, "issue": act.threads, "comment": act.comments,
                  "review_comment": act.review_comments}[kind]
        return source.items[ident]

    def _touched(self, act: RepoActivity, kind: str, item: Item, now: int) -> None:
        self._retime(act, kind, item, now)

    @staticmethod
    def _retime(act: RepoActivity, kind: str, item: Item, now: int) -> None:
        old, item["updated"] = item["updated"], now
        if kind in ("pull", "issue"):
            act.threads.reindex(item["id"], old)
            if item["pull_id"] is not None:
                act.pulls.reindex(item["pull_id"], old)
        else:
            (act.comments if kind == "comment" else act.review_comments).reindex(
                item["id"], old)

    def _remove(self, act: RepoActivity, kind: str, ident: int,
                now: int) -> list[tuple[str, int]]:
        """A pull request or issue takes its comments, review comments and reviews along."""
        if kind == "label":
            drop_label(act, act.threads.items.values(), ident)
        elif kind == "review":
            drop_by_id(act.reviews.values(), ident)
        elif kind in ("comment", "review_comment"):
            item = self._item(act, kind, ident)
            (act.comments if kind == "comment" else act.review_comments).remove(ident)
            if kind == "comment":
                act.conversation[item["number"]].remove(ident)
                act.by_number[item["number"]]["comments"] -= 1
        else:
            return self._remove_thread(act, self._item(act, kind, ident))
        return [(kind, ident)]

    def _remove_thread(self, act: RepoActivity, thread: Item) -> list[tuple[str, int]]:
        """A pull request or issue and everything under it."""
        number, pull_id = thread["number"], thread["pull_id"]
        act.threads.remove(thread["id"])
        del act.by_number[number]
        removed = [("pull", pull_id) if pull_id is not None else ("issue", thread["id"])]
        if pull_id is not None:
            act.pulls.remove(pull_id)
        remarks = [i for i, c in act.review_comments.items.items() if c["number"] == number]
        children = [("comment", act.comments, i) for i in act.conversation.pop(number, [])]
        children += [("review_comment", act.review_comments, i) for i in remarks]
        for kind, collection, ident in children:
            collection.remove(ident)
            self._where[kind].pop(ident, None)
            removed.append((kind, ident))
        for review in act.reviews.pop(number, []):
            self._where["review"].pop(review["id"], None)
            removed.append(("review", review["id"]))
        return removed
