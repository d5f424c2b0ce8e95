"""Seeding GitLab activity: the per-project model (:class:`ProjectActivity`) and
:class:`GitLabSeeding`, the ``seed_activity`` half of :class:`~.gitlab_data.GitLabActivity`.

GitLab numbers merge requests and issues in two sequences per project (``!iid``, ``#iid``);
ids are global and handed out in creation order. Comments are notes: ``comments`` user notes
over issues and merge requests, ``review_comments`` diff notes (``type: "DiffNote"`` with a
``position``) on merge requests, plus the system notes GitLab writes itself (``system: true``:
"closed", "merged", "added ~N label"), which are extra. ``reviews`` are approvals. Deterministic
per ``(group, seed)`` and clock; timestamps in the year before "now", none after ``now - 1 h``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from keyway.simulators.activity import NOUNS, PATHS, QUIET, VERBS, Collection, Item, later
from keyway.simulators.activity_store import ActivityStore
from keyway.simulators.gitlab_api import GitLabData
from keyway.simulators.seeding import (
    bump,
    check_counts,
    deal_threads,
    label_specs,
    load,
    pick,
    threads_by_state,
    timed,
)

FIRST_ID = {"pull": 300_000_000, "issue": 140_000_000, "comment": 1_900_000_000,
            "review": 7_000_000, "label": 30_000_000}
NOTE_KINDS = ("comment", "review_comment")  # both are notes and share the note id sequence


@dataclass
class ProjectActivity:
    """One project's activity and its indexes."""

    project: dict[str, Any]
    merge_requests: Collection = field(default_factory=threads_by_state)
    issues: Collection = field(default_factory=threads_by_state)
    notes: dict[int, Item] = field(default_factory=dict)  # by note id
    threads: dict[tuple[str, int], list[int]] = field(
        default_factory=lambda: defaultdict(list))  # (noteable type, iid) -> note ids
    approvals: dict[int, list[Item]] = field(default_factory=lambda: defaultdict(list))
    labels: list[Item] = field(default_factory=list)
    by_iid: dict[tuple[str, int], Item] = field(default_factory=dict)
    next_iid: dict[str, int] = field(default_factory=lambda: {"MergeRequest": 1, "Issue": 1})

    @property
    def name(self) -> str:
        return self.project["path_with_namespace"]

    def collection(self, thread: Item) -> Collection:
        """The index a merge request or issue lives in."""
        return self.merge_requests if thread["noteable_type"] == "MergeRequest" else self.issues


class GitLabSeeding(ActivityStore[ProjectActivity]):
    """``seed_activity`` and its helpers: the seeding half of the activity store."""

    data: GitLabData
    projects: dict[int, ProjectActivity]

    def seed_activity(self, group: str, repos: int, prs: int, issues: int, comments: int,
                      review_comments: int = 0, reviews: int = 0, labels: int = 5,
                      seed: int = 0) -> list[dict[str, Any]]:
        """Create ``repos`` new projects in ``group`` and spread ``prs`` merge requests,
        ``issues`` issues, ``comments`` user notes, ``review_comments`` diff notes and
        ``reviews`` approvals over them; ``labels`` labels each. Returns the projects."""
        check_counts(repos, prs, issues, comments, review_comments, reviews, labels,
                     container="project")
        rng, now = random.Random(f"gitlab:{group}:{seed}"), int(self.clock())
        with self.lock:
            made = self.data.seed(group, repos)
            acts = [self._open(project, labels) for project in made]
            threads = self._seed_threads(acts, prs, issues, rng, now)
            mrs = [t for t in threads if t["noteable_type"] == "MergeRequest"]
            planned = [(t["closed"], t, "system", _verb(t)) for t in threads if t["closed"]]
            planned += [(t["created"] + 60, t, "system", f"added ~{label['id']} label")
                        for t in threads for label in t["labels"]]
            planned += self._plan(threads, comments, "comment", rng, now)
            planned += self._plan(mrs, review_comments, "diff", rng, now)
            self._seed_notes(planned, rng, now)
            self._seed_approvals(mrs, reviews, rng, now)
            self._load(acts, threads)
        return made

    def _open(self, project: dict[str, Any], labels: int) -> ProjectActivity:
        act = ProjectActivity(project)
        for name, color, text, _ in label_specs(labels):
            label = {"id": next(self._ids["label"]), "name": name, "color": f"#{color}",
                     "description": text, "open_issues_count": 0, "closed_issues_count": 0,
                     "open_merge_requests_count": 0}
            act.labels.append(label)
            self._where["label"][label["id"]] = act
        self.projects[project["id"]] = act
        return act

    def _seed_threads(self, acts: list[ProjectActivity], mrs: int, issues: int,
                      rng: random.Random, now: int) -> list[Item]:
        return [self._thread(act, kind, created, rng, now) for act, kind, created
                in deal_threads(acts, ["MergeRequest"] * mrs + ["Issue"] * issues, rng, now)]

    def _thread(self, act: ProjectActivity, kind: str, created: int, rng: random.Random,
                now: int) -> Item:
        iid, is_mr = act.next_iid[kind], kind == "MergeRequest"
        act.next_iid[kind] += 1
        updated, roll = later(rng, created, now - QUIET), rng.random()
        state = ("merged" if roll < 0.6 else "closed" if roll < 0.75 else "opened") if is_mr \
            else ("closed" if roll < 0.55 else "opened")
        closed = later(rng, created, updated, 1.0) if state != "opened" else None
        draft = is_mr and state == "opened" and rng.random() < 0.2
        item = {"id": next(self._ids["pull" if is_mr else "issue"]), "iid": iid,
                "noteable_type": kind, "project_id": act.project["id"], "state": state,
                "title": ("Draft: " if draft else "") + f"{rng.choice(VERBS)} "
                         f"{rng.choice(NOUNS)}", "draft": draft,
                "description": f"Seeded {'merge request' if is_mr else 'issue'} {iid}.",
                "user": rng.choice(self.users),
                "assignee": rng.choice(self.users) if rng.random() < 0.4 else None,
                "labels": rng.sample(act.labels, min(len(act.labels), rng.randint(0, 2))),
                "created": created, "updated": updated, "closed": closed, "notes": 0}
        counter = (f"{'open' if state == 'opened' else 'closed'}_"
                   f"{'merge_requests' if is_mr else 'issues'}_count")
        for label in item["labels"]:
            label[counter] = label.get(counter, 0) + 1
        act.by_iid[(kind, iid)] = item
        self._where["pull" if is_mr else "issue"][item["id"]] = act
        return item

    @staticmethod
    def _plan(parents: list[Item], count: int, kind: str, rng: random.Random,
              now: int) -> list[tuple[int, Item, str, str]]:
        """``count`` notes of ``kind`` under random parents, unordered (system notes join
        them before :meth:`_seed_notes` sorts by time)."""
        moments = timed(rng, pick(rng, parents, count), now)
        return [(created, parent, kind, "") for created, parent in moments]

    def _seed_notes(self, planned: list[tuple[int, Item, str, str]], rng: random.Random,
                    now: int) -> None:
        """Notes in creation order: ids ascend with time; each bumps its noteable."""
        for created, parent, kind, text in sorted(planned, key=itemgetter(0)):
            act = self.projects[parent["project_id"]]
            note = {"id": next(self._ids["comment"]), "noteable_type": parent["noteable_type"],
                    "iid": parent["iid"], "noteable_id": parent["id"],
                    "project_id": parent["project_id"], "user": rng.choice(self.users),
                    "created": created, "system": kind == "system",
                    "type": "DiffNote" if kind == "diff" else None,
                    "updated": later(rng, created, now - QUIET) if kind != "system"
                    and rng.random() < 0.15 else created}
            note["body"] = text or f"{'Diff note' if kind == 'diff' else 'Note'} {note['id']}."
            if kind == "diff":
                note.update(path=rng.choice(PATHS), line=rng.randint(1, 400))
            if kind != "system":
                parent["notes"] += 1
                self._where["review_comment" if kind == "diff" else "comment"][note["id"]] = act
            act.notes[note["id"]] = note
            act.threads[(parent["noteable_type"], parent["iid"])].append(note["id"])
            bump(parent, created)

    def _seed_approvals(self, mrs: list[Item], count: int, rng: random.Random,
                        now: int) -> None:
        for mr in pick(rng, mrs, count):
            act = self.projects[mr["project_id"]]
            taken = {a["user"]["id"] for a in act.approvals[mr["iid"]]}
            free = [u for u in self.users if u["id"] not in taken and u is not mr["user"]]
            if free:
                created = rng.randint(mr["created"], now - QUIET)
                approval = {"id": next(self._ids["review"]), "user": rng.choice(free),
                            "iid": mr["iid"], "created": created}
                act.approvals[mr["iid"]].append(approval)
                self._where["review"][approval["id"]] = act
                bump(mr, created)

    def _load(self, acts: list[ProjectActivity], threads: list[Item]) -> None:
        """Build the indexes once everything is seeded (``updated`` is final by then)."""
        load(threads, lambda thread: self.projects[thread["project_id"]].collection(thread))
        for act in acts:
            for approvals in act.approvals.values():
                approvals.sort(key=itemgetter("created", "id"))


def _verb(thread: Item) -> str:
    return "merged" if thread["state"] == "merged" else "closed"
