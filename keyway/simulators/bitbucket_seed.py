"""Seeding Bitbucket Cloud activity: workspaces and their repositories (:class:`RepoActivity`)
and :class:`BitbucketSeeding`, the ``seed_activity`` half of
:class:`~.bitbucket_data.BitbucketActivity`.

Bitbucket numbers pull requests and issues per repository (``id`` 1, 2, …, apart); comment ids
are global and ascend with time, one sequence for pull request comments and one for issue
comments. Every other repository has its issue tracker switched off (``has_issues: false``);
issues go only to repositories with a tracker. ``review_comments`` are inline comments,
``reviews`` decisions among a pull request's participants (mostly approvals, some change
requests). Deterministic per ``(workspace, seed)`` and clock; nothing after ``now - 1 h``.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from keyway.simulators.activity import NOUNS, PATHS, QUIET, VERBS, Collection, Item, later
from keyway.simulators.activity_store import ActivityStore
from keyway.simulators.seeding import (
    bump,
    check_counts,
    load,
    pick,
    seeded_times,
    threads_by_state,
    timed,
)

PR_STATES = ("OPEN", "MERGED", "DECLINED", "SUPERSEDED")
EPOCH = 1_420_070_400  # 2015-01-01, when seeded repositories were created


def uuid_of(*parts: object) -> str:
    """A stable ``{uuid}`` for the given parts (Bitbucket's braces included)."""
    return "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts)))) + "}"


@dataclass
class RepoActivity:
    """One repository, its pull requests, issues, comments and participants."""

    repo: dict[str, Any]
    pulls: Collection = field(default_factory=threads_by_state)
    issues: Collection = field(default_factory=threads_by_state)
    comments: dict[int, Item] = field(default_factory=dict)  # pull request comments by id
    issue_comments: dict[int, Item] = field(default_factory=dict)
    threads: dict[tuple[str, int], list[int]] = field(
        default_factory=lambda: defaultdict(list))  # ("pr"|"issue", id) -> comment ids
    participants: dict[int, list[Item]] = field(default_factory=lambda: defaultdict(list))
    next_id: dict[str, int] = field(default_factory=lambda: {"pr": 1, "issue": 1})

    @property
    def name(self) -> str:
        return self.repo["full_name"]

    def thread(self, kind: str, number: int) -> Item | None:
        return (self.pulls if kind == "pr" else self.issues).items.get(number)


class BitbucketSeeding(ActivityStore[RepoActivity]):
    """``seed_activity`` and its helpers: the seeding half of the activity store."""

    workspaces: dict[str, dict[str, Any]]
    repos: dict[str, RepoActivity]  # full_name -> activity

    def workspace(self, slug: str) -> dict[str, Any]:
        with self.lock:
            return self.workspaces.setdefault(slug.lower(), {
                "slug": slug.lower(), "name": slug, "uuid": uuid_of("workspace", slug.lower())})

    def add_repository(self, slug: str, name: str, has_issues: bool, private: bool,
                       created: int) -> RepoActivity:
        ws = self.workspace(slug)
        full = f"{ws['slug']}/{name}"
        repo = {"uuid": uuid_of("repository", full), "slug": name, "name": name,
                "full_name": full, "workspace": ws, "is_private": private,
                "has_issues": has_issues, "created": created, "updated": created,
                "mainbranch": "main"}
        with self.lock:
            self.repos[full] = act = RepoActivity(repo)
        return act

    def seed_activity(self, owner: str, repos: int, prs: int, issues: int, comments: int,
                      review_comments: int = 0, reviews: int = 0, labels: int = 0,
                      seed: int = 0) -> list[dict[str, Any]]:
        """Create ``repos`` repositories in workspace ``owner`` and spread the activity over
        them (``labels`` is accepted for symmetry: Bitbucket has none). Returns the repos."""
        check_counts(repos, prs, issues, comments, review_comments, reviews)
        rng, now = random.Random(f"bitbucket:{owner}:{seed}"), int(self.clock())
        with self.lock:
            start = sum(1 for a in self.repos.values() if a.repo["workspace"]["slug"]
                        == owner.lower())
            acts = [self.add_repository(owner, f"repo-{start + i + 1:04d}", i % 2 == 0,
                                        i % 3 != 2, EPOCH + 3600 * (start + i))
                    for i in range(repos)]
            trackers = [a for a in acts if a.repo["has_issues"]]
            pulls = self._threads(acts, "pr", prs, rng, now)
            threads = pulls + self._threads(trackers, "issue", issues, rng, now)
            self._comments(threads, comments, rng, now, inline=False)
            self._comments(pulls, review_comments, rng, now, inline=True)
            self._decisions(pulls, reviews, rng, now)
            load(threads, lambda t: t["repo"].pulls if t["kind"] == "pr" else t["repo"].issues)
        return [dict(a.repo) for a in acts]

    def _threads(self, acts: list[RepoActivity], kind: str, count: int, rng: random.Random,
                 now: int) -> list[Item]:
        if not acts or not count:
            return []
        made = []
        for i, created in enumerate(seeded_times(rng, count, now)):
            act = acts[i % len(acts)]
            number = act.next_id[kind]
            act.next_id[kind] += 1
            roll = rng.random()
            if kind == "pr":
                state = ("MERGED" if roll < 0.6 else "DECLINED" if roll < 0.7
                         else "SUPERSEDED" if roll < 0.75 else "OPEN")
            else:
                state = "resolved" if roll < 0.5 else "new" if roll < 0.8 else "open"
            made.append({"id": number, "kind": kind, "repo": act, "state": state,
                         "title": f"{rng.choice(VERBS)} {rng.choice(NOUNS)}",
                         "author": rng.choice(self.users), "created": created,
                         "updated": later(rng, created, now - QUIET),
                         "assignee": rng.choice(self.users) if rng.random() < 0.4 else None,
                         "draft": kind == "pr" and state == "OPEN" and rng.random() < 0.2,
                         "comments": 0})
        return made

    def _comments(self, threads: list[Item], count: int, rng: random.Random, now: int,
                  inline: bool) -> None:
        chosen = list(pick(rng, threads, count))  # every parent first, then every time
        for created, thread in sorted(timed(rng, chosen, now), key=itemgetter(0)):
            text = f"{'Inline c' if inline else 'C'}omment on {thread['title'].lower()}"
            self._new_comment(thread, rng.choice(self.users), text, created,
                              {"path": rng.choice(PATHS), "from": None,
                               "to": rng.randint(1, 400)} if inline else None)
            if rng.random() < 0.1:
                self._last_comment(thread)["updated"] = later(rng, created, now - QUIET)

    def _decisions(self, pulls: list[Item], count: int, rng: random.Random, now: int) -> None:
        for pull in pick(rng, pulls, count):
            act = pull["repo"]
            taken = {p["user"]["id"] for p in act.participants[pull["id"]]}
            free = [u for u in self.users if u["id"] not in taken and u is not pull["author"]]
            if free:
                when = rng.randint(pull["created"], now - QUIET)
                state = "approved" if rng.random() < 0.8 else "changes_requested"
                act.participants[pull["id"]].append(
                    {"user": rng.choice(free), "role": "REVIEWER", "state": state, "at": when})
                bump(pull, when)

    def _new_comment(self, thread: Item, author: Item, text: str, created: int,
                     inline: dict | None) -> Item:
        act, kind = thread["repo"], thread["kind"]
        store = act.comments if kind == "pr" else act.issue_comments
        comment = {"id": next(self._ids[kind]), "kind": kind, "thread": thread["id"],
                   "user": author, "text": text, "created": created, "updated": created,
                   "inline": inline}
        store[comment["id"]] = comment
        act.threads[(kind, thread["id"])].append(comment["id"])
        thread["comments"] += 1
        bump(thread, created)
        return comment

    @staticmethod
    def _last_comment(thread: Item) -> Item:
        act, kind = thread["repo"], thread["kind"]
        store = act.comments if kind == "pr" else act.issue_comments
        return store[act.threads[(kind, thread["id"])][-1]]
