"""Seeding GitHub activity: the per-repository model (:class:`RepoActivity`) and
:class:`GitHubSeeding`, the ``seed_activity`` half of :class:`~.github_data.GitHubActivity`.

GitHub numbers issues and pull requests in one sequence per repository, and every pull
request is also an issue: :attr:`RepoActivity.threads` holds both (what ``/issues`` lists),
:attr:`RepoActivity.pulls` the same pull request dicts keyed by their pull id. Seeding is
deterministic for a given ``(owner, seed)`` and clock; timestamps fall in the year before
the clock's "now" and never after ``now - 1 h``, so a later ``touch`` is always newer. Ids are
handed out in creation order, as GitHub's are.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyway.simulators.activity import NOUNS, PATHS, QUIET, VERBS, Collection, Item, later
from keyway.simulators.activity_store import ActivityStore
from keyway.simulators.github_api import GitHubData
from keyway.simulators.seeding import (
    bump,
    check_counts,
    children,
    deal_threads,
    label_specs,
    load,
    threads_by_state,
)

REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED")
FIRST_ID = {"issue": 2_000_000_000, "pull": 1_500_000_000, "comment": 2_500_000_000,
            "review_comment": 1_300_000_000, "review": 2_100_000_000, "label": 6_000_000_000}


@dataclass
class RepoActivity:
    """One repository's activity and its indexes."""

    repo: dict[str, Any]
    threads: Collection = field(default_factory=threads_by_state)
    pulls: Collection = field(default_factory=lambda: threads_by_state("pull_id"))
    comments: Collection = field(default_factory=Collection)
    review_comments: Collection = field(default_factory=Collection)
    reviews: dict[int, list[Item]] = field(default_factory=lambda: defaultdict(list))
    labels: list[Item] = field(default_factory=list)
    by_number: dict[int, Item] = field(default_factory=dict)
    conversation: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    next_number: int = 1

    @property
    def name(self) -> str:
        return self.repo["full_name"]


class GitHubSeeding(ActivityStore[RepoActivity]):
    """``seed_activity`` and its helpers: the seeding half of the activity store."""

    data: GitHubData
    repos: dict[str, RepoActivity]

    def seed_activity(self, owner: str, repos: int, prs: int, issues: int, comments: int,
                      review_comments: int = 0, reviews: int = 0, labels: int = 5,
                      seed: int = 0) -> list[dict[str, Any]]:
        """Create ``repos`` new repositories under ``owner`` and spread the given numbers of
        pull requests, issues, issue comments, review comments and reviews over them; each
        repository gets ``labels`` labels. Returns the repositories."""
        check_counts(repos, prs, issues, comments, review_comments, reviews, labels)
        rng, now = random.Random(f"github:{owner}:{seed}"), int(self.clock())
        with self.lock:
            made = self.data.seed(owner, repos)
            acts = [self._open(repo, labels) for repo in made]
            threads = self._seed_threads(acts, prs, issues, rng, now)
            pulls = [t for t in threads if t["pull_id"] is not None]
            notes = self._seed_comments(threads, comments, rng, now)
            verdicts = self._seed_reviews(pulls, reviews, rng, now)
            remarks = self._seed_review_comments(pulls, review_comments, rng, now)
            self._load(threads, pulls, notes, verdicts, remarks)
        return made

    def _open(self, repo: dict[str, Any], labels: int) -> RepoActivity:
        act = RepoActivity(repo)
        for name, color, text, default in label_specs(labels):
            label = {"id": next(self._ids["label"]), "name": name, "color": color,
                     "description": text, "default": default}
            act.labels.append(label)
            self._where["label"][label["id"]] = act
        self.repos[act.name.lower()] = act
        return act

    def _seed_threads(self, acts: list[RepoActivity], prs: int, issues: int,
                      rng: random.Random, now: int) -> list[Item]:
        return [self._thread(act, is_pull, created, rng, now) for act, is_pull, created
                in deal_threads(acts, [True] * prs + [False] * issues, rng, now)]

    def _thread(self, act: RepoActivity, is_pull: bool, created: int, rng: random.Random,
                now: int) -> Item:
        number, act.next_number = act.next_number, act.next_number + 1
        updated, roll = later(rng, created, now - QUIET), rng.random()
        state = "closed" if roll < (0.75 if is_pull else 0.55) else "open"
        closed = later(rng, created, updated, 1.0) if state == "closed" else None
        item = {
            "id": next(self._ids["issue"]), "number": number, "repo": act.name,
            "pull_id": next(self._ids["pull"]) if is_pull else None,
            "title": f"{rng.choice(VERBS)} {rng.choice(NOUNS)}",
            "body": f"Seeded {'pull request' if is_pull else 'issue'} #{number}.",
            "state": state, "user": rng.choice(self.users), "locked": False,
            "labels": rng.sample(act.labels, min(len(act.labels), rng.randint(0, 2))),
            "assignee": rng.choice(self.users) if rng.random() < 0.4 else None,
            "created": created, "updated": updated, "closed": closed, "comments": 0,
            "merged": closed if is_pull and roll < 0.6 else None,
            "draft": is_pull and state == "open" and rng.random() < 0.2,
        }
        act.by_number[number] = item
        self._where["pull" if is_pull else "issue"][item["pull_id"] or item["id"]] = act
        return item

    def _children(self, kind: str, parents: list[Item], count: int, rng: random.Random,
                  now: int) -> list[Item]:
        """``count`` items under random parents, created after them, ids in creation order;
        each bumps its parent's ``updated`` (GitHub does on a new comment or review)."""
        made = []
        for created, parent in children(rng, parents, count, now):
            edited = rng.random() < 0.15
            made.append({"id": next(self._ids[kind]), "number": parent["number"],
                         "repo": parent["repo"], "user": rng.choice(self.users),
                         "created": created,
                         "updated": later(rng, created, now - QUIET) if edited else created})
            bump(parent, created)
        return made

    def _seed_comments(self, threads: list[Item], count: int, rng: random.Random,
                       now: int) -> list[Item]:
        made = self._children("comment", threads, count, rng, now)
        for item in made:
            item["body"] = f"Comment {item['id']} on #{item['number']}."
            act = self.repos[item["repo"].lower()]
            act.by_number[item["number"]]["comments"] += 1
            act.conversation[item["number"]].append(item["id"])
        return made

    def _seed_reviews(self, pulls: list[Item], count: int, rng: random.Random,
                      now: int) -> list[Item]:
        made = self._children("review", pulls, count, rng, now)
        for item in made:
            item.update(state=rng.choice(REVIEW_STATES), body="Seeded review.")
            self.repos[item["repo"].lower()].reviews[item["number"]].append(item)
        return made

    def _seed_review_comments(self, pulls: list[Item], count: int, rng: random.Random,
                              now: int) -> list[Item]:
        made = self._children("review_comment", pulls, count, rng, now)
        for item in made:
            reviews = self.repos[item["repo"].lower()].reviews.get(item["number"])
            item.update(path=rng.choice(PATHS), line=rng.randint(1, 400),
                        body=f"Review comment {item['id']}.",
                        review_id=rng.choice(reviews)["id"] if reviews
                        else next(self._ids["review"]))
        return made

    def _load(self, threads: list[Item], pulls: list[Item], notes: list[Item],
              verdicts: list[Item], remarks: list[Item]) -> None:
        """Build the indexes once everything is seeded (``updated`` is final by then)."""
        for attribute, items in (("threads", threads), ("comments", notes),
                                 ("review_comments", remarks), ("pulls", pulls)):
            load(items, self._collection(attribute))
        for kind, items in (("comment", notes), ("review", verdicts),
                            ("review_comment", remarks)):
            self._where[kind].update((i["id"], self.repos[i["repo"].lower()]) for i in items)

    def _collection(self, attribute: str) -> Callable[[Item], Collection]:
        """Where an item goes: collection ``attribute`` of its repository."""
        return lambda item: getattr(self.repos[item["repo"].lower()], attribute)
