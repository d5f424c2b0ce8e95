"""Seeded Bitbucket Cloud activity as the simulator serves it: :class:`BitbucketActivity` holds
every workspace's repositories with their pull requests, issues, comments and participants
(:mod:`.bitbucket_seed` makes them), answers the API's reads, takes its writes (a new comment)
and offers the knobs tests use: :meth:`~BitbucketActivity.decide` (approve, request changes,
withdraw), :meth:`~BitbucketActivity.remove_repository`, and the hooks of the ``touch`` and
``delete`` knobs (:mod:`.activity_store`), whose removals are kept in
:attr:`~BitbucketActivity.deleted`. Thread-safe; see :mod:`.activity` for the indexes.

Kinds: ``pull`` (by ``<full name>#<id>``), ``issue`` (same), ``comment`` (a pull request
comment, by id) and ``issue_comment``. Adding, editing or deleting a comment or a decision
bumps its pull request's or issue's ``updated_on``, as Bitbucket does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from keyway.simulators.activity import Deletion, Item, Query
from keyway.simulators.bitbucket_seed import BitbucketSeeding, RepoActivity, uuid_of
from keyway.simulators.oauth_model import Account

KINDS = ("pull", "issue", "comment", "issue_comment")
FIRST_ID = {"pr": 420_000_000, "issue": 60_000_000}


def account_json_fields(account: Account) -> Item:
    """The seeded-user shape of a signed-in simulator account."""
    return {"id": account.id, "uuid": uuid_of("user", account.id), "nickname": account.login,
            "display_name": account.name}


class BitbucketActivity(BitbucketSeeding):
    """Workspaces, repositories, their activity, the users who author it and the deletions.
    Items are found by ``<full name>#<id>`` keys (``_where`` stays empty)."""

    KINDS = TOUCHABLE = KINDS  # (the module's: pull, issue, comment, issue_comment)
    TEXT = "text"

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock, [{"id": 9_000 + i, "uuid": uuid_of("user", 9_000 + i),
                                  "nickname": f"dev-{i:03d}", "display_name": f"Developer {i}"}
                                 for i in range(1, 41)],
                         {kind: itertools.count(first) for kind, first in FIRST_ID.items()})
        self.workspaces: dict = {}
        self.repos: dict[str, RepoActivity] = {}

    # ---- reads ----------------------------------------------------------------------------------
    def find(self, workspace: str, slug: str) -> RepoActivity | None:
        with self.lock:
            return self.repos.get(f"{workspace.lower()}/{slug.lower()}")

    def repositories(self, workspace: str) -> list[dict]:
        with self.lock:
            return [dict(a.repo) for a in self.repos.values()
                    if a.repo["workspace"]["slug"] == workspace.lower()]

    def page(self, act: RepoActivity, kind: str, query: Query,
             states: frozenset[str] | None = None) -> tuple[list[Item], int]:
        """A page of pull requests or issues (copies); ``states`` narrows pull requests."""
        collection = act.pulls if kind == "pr" else act.issues
        with self.lock:
            if states is None or len(states) == 1:
                bucket = next(iter(states)) if states else "all"
                q = Query(bucket, query.order, query.descending, query.since, query.offset,
                          query.limit)
                items, total = collection.query(q)
            else:  # several states: filter the whole ordered list (small in tests)
                every, _ = collection.query(Query("all", query.order, query.descending,
                                                  query.since, 0, len(collection)))
                matched = [i for i in every if i["state"] in states]
                items = matched[query.offset:query.offset + query.limit]
                total = len(matched)
            return [dict(item) for item in items], total

    def thread(self, act: RepoActivity, kind: str, number: int) -> Item | None:
        with self.lock:
            found = act.thread(kind, number)
            return None if found is None else dict(found)

    def comments(self, act: RepoActivity, kind: str, number: int) -> list[Item] | None:
        """A thread's comments (copies), None when there is no such thread."""
        store = act.comments if kind == "pr" else act.issue_comments
        with self.lock:
            if act.thread(kind, number) is None:
                return None
            return [dict(store[i]) for i in act.threads.get((kind, number), [])]

    def participants(self, act: RepoActivity, number: int) -> list[Item]:
        with self.lock:
            return [dict(p) for p in act.participants.get(number, [])]

    # ---- writes (the API and the knobs) ---------------------------------------------------------
    def add_comment(self, act: RepoActivity, kind: str, number: int, author: Account,
                    text: str) -> Item | None:
        """A new comment by ``author``; None if there is no such thread."""
        with self.lock:
            thread = act.thread(kind, number)
            if thread is None:
                return None
            old = thread["updated"]
            comment = self._new_comment(thread, account_json_fields(author), text,
                                        int(self.clock()), None)
            self._reindex(act, thread, old)
            return dict(comment)

    def decide(self, full_name: str, number: int, user: Item, state: str | None) -> None:
        """``user`` approves (``approved``), requests changes (``changes_requested``) or
        withdraws their decision (``None``) on pull request ``number``, now."""
        with self.lock:
            act = self.repos[full_name]
            now, pull = int(self.clock()), act.pulls.items[number]
            entries = [p for p in act.participants[number] if p["user"]["id"] != user["id"]]
            act.participants[number] = entries + [
                {"user": user, "role": "REVIEWER", "state": state, "at": now}]
            old = pull["updated"]
            pull["updated"] = now
            self._reindex(act, pull, old)

    def remove_repository(self, full_name: str) -> bool:
        """The repository is deleted (or its access revoked): gone from every list."""
        with self.lock:
            act = self.repos.pop(full_name, None)
            if act is not None:
                self.deleted.append(Deletion("repository", 0, full_name, int(self.clock())))
            return act is not None

    # ---- the knobs' hooks (activity_store): keys are ``<full name>#<id>`` ----------------------
    def _touchable(self, kind: str) -> list[str]:
        found = []
        for act in self.repos.values():
            if kind == "pull":
                found += [f"{act.name}#{i}" for i in act.pulls.items]
            elif kind == "issue":
                found += [f"{act.name}#{i}" for i in act.issues.items]
            else:
                store = act.comments if kind == "comment" else act.issue_comments
                found += [f"{act.name}#{i}" for i in store]
        return found

    def _forget(self, kind: str, key: str) -> RepoActivity | None:
        return self._locate(kind, key)[0] if key in self._touchable(kind) else None

    def _touched(self, act: RepoActivity, kind: str, item: Item, now: int) -> None:
        """A comment's thread is updated with it."""
        thread = item if kind in ("pull", "issue") else act.thread(item["kind"], item["thread"])
        if kind not in ("pull", "issue"):
            item["updated"] = now
        old = thread["updated"]
        thread["updated"] = now
        self._reindex(act, thread, old)

    def _remove(self, act: RepoActivity, kind: str, key: str,
                now: int) -> list[tuple[str, int]]:
        """A thread takes its comments with it (only the thread is recorded); a comment bumps
        its thread and lowers its ``comment_count``."""
        _, item = self._locate(kind, key)
        if kind in ("comment", "issue_comment"):
            store = act.comments if kind == "comment" else act.issue_comments
            del store[item["id"]]
            act.threads[(item["kind"], item["thread"])].remove(item["id"])
            thread = act.thread(item["kind"], item["thread"])
            thread["comments"] -= 1  # comment_count counts the comments there are
            old, thread["updated"] = thread["updated"], now
            self._reindex(act, thread, old)
        else:
            (act.pulls if kind == "pull" else act.issues).remove(item["id"])
            act.threads.pop(("pr" if kind == "pull" else "issue", item["id"]), None)
        return [(kind, int(str(key).rsplit("#", 1)[-1]))]

    def _locate(self, kind: str, key: str) -> tuple[RepoActivity, Item]:
        full_name, ident = key.rsplit("#", 1)
        act = self.repos[full_name]
        store = {"pull": act.pulls.items, "issue": act.issues.items, "comment": act.comments,
                 "issue_comment": act.issue_comments}[kind]
        return act, store[int(ident)]

    @staticmethod
    def _reindex(act: RepoActivity, thread: Item, old: int) -> None:
        collection = act.pulls if thread["kind"] == "pr" else act.issues
        if thread["id"] in collection.items:
            collection.reindex(thread["id"], old)
