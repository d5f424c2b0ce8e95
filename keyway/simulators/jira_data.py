"""Seeded Jira Cloud activity as the simulator serves it: one site (cloud id, URL) with
projects, issues, comments and the users who write them; the knobs tests use (``touch``,
``delete``) and the API's one write (a new comment). Thread-safe.

Items are plain dicts with epoch-millisecond times under ``created`` and ``updated``. Issues are
numbered per project (``KEY-1``, ``KEY-2``…); ids are global and handed out in creation order,
as Jira's are. Seeded times lie in the year before "now", none after ``now - 1 h``;
deterministic per ``(seed)`` and clock.
"""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyway.simulators.activity import DEFAULT_LABELS, NOUNS, QUIET, VERBS, YEAR, choose, later

Item = dict[str, Any]
STATUSES = (("To Do", "new"), ("In Progress", "indeterminate"), ("Done", "done"))


@dataclass
class Project:
    id: int
    key: str
    name: str
    issues: dict[int, Item] = field(default_factory=dict)  # by number
    next_number: int = 1


class JiraData:
    """The site's projects, issues and comments (see the module docstring)."""

    def __init__(self, clock: Callable[[], float], site: str = "acme") -> None:
        self.clock = clock
        self.cloud_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{site}.atlassian.net"))
        self.site_url = f"https://{site}.atlassian.net"
        self.site_name = site
        self.projects: dict[int, Project] = {}
        self.comments: dict[int, Item] = {}  # by id; each names its issue
        self.deleted: list[tuple[str, int]] = []
        self.users = [{"accountId": f"5b10ac8d82e05b22cc7d{i:04d}", "displayName": f"Dev {i}"}
                      for i in range(1, 21)]
        self._ids = {"project": itertools.count(10_000), "issue": itertools.count(10_001),
                     "comment": itertools.count(10_100)}
        self._touches = 0
        self.lock = threading.RLock()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ---- seeding --------------------------------------------------------------------------
    def seed(self, projects: int, issues: int, comments: int, labels: int = 5,
             seed: int = 0) -> list[Project]:
        rng, now = random.Random(f"jira:{seed}"), int(self.clock())
        with self.lock:
            made = [self._project(rng) for _ in range(projects)]
            names = [DEFAULT_LABELS[i % len(DEFAULT_LABELS)][0].replace(" ", "-")
                     for i in range(labels)]
            issued = [self._issue(rng.choice(made), rng, now, names) for _ in range(issues)]
            for _ in range(comments if issued else 0):
                target = rng.choice(issued)
                at = later(rng, target["created"] // 1000, now - QUIET)
                self._comment(target, rng.choice(self.users), f"Comment on {target['key']}",
                              at * 1000)
            return made

    def _project(self, rng: random.Random) -> Project:
        n = len(self.projects) + 1
        key = "".join(chr(65 + (n * 7 + i) % 26) for i in range(3))
        project = Project(next(self._ids["project"]), key, f"Project {key}")
        self.projects[project.id] = project
        return project

    def _issue(self, project: Project, rng: random.Random, now: int,
               labels: list[str]) -> Item:
        created = rng.randint(now - YEAR, now - QUIET)
        status = rng.choice(STATUSES)
        updated = later(rng, created, now - QUIET)
        issue = {"id": next(self._ids["issue"]), "number": project.next_number,
                 "key": f"{project.key}-{project.next_number}", "project": project.id,
                 "summary": f"{rng.choice(VERBS)} {rng.choice(NOUNS)}",
                 "status": status, "created": created * 1000, "updated": updated * 1000,
                 "resolved": updated * 1000 if status[1] == "done" else None,
                 "reporter": rng.choice(self.users),
                 "assignee": rng.choice([None, *self.users[:5]]),
                 "labels": sorted(set(rng.sample(labels, min(len(labels), rng.randint(0, 2))))),
                 "comments": []}
        project.issues[issue["number"]] = issue
        project.next_number += 1
        return issue

    def _comment(self, issue: Item, author: Item, text: Any, at_ms: int,
                 properties: list | None = None) -> Item:
        comment = {"id": next(self._ids["comment"]), "issue": issue["id"],
                   "issue_key": issue["key"], "author": author, "body": text,
                   "created": at_ms, "updated": at_ms, "properties": properties or []}
        self.comments[comment["id"]] = comment
        issue["comments"].append(comment["id"])
        issue["updated"] = max(issue["updated"], at_ms)
        return comment

    # ---- reads ----------------------------------------------------------------------------
    def project(self, ident: Any) -> Project | None:
        with self.lock:
            return next((p for p in self.projects.values()
                         if str(p.id) == str(ident) or p.key == str(ident)), None)

    def issue(self, key: str) -> Item | None:
        with self.lock:
            prefix, _, number = key.rpartition("-")
            project = self.project(prefix)
            if project is None or not number.isdigit():
                found = [i for p in self.projects.values() for i in p.issues.values()
                         if str(i["id"]) == key]
                return found[0] if found else None
            return project.issues.get(int(number))

    def issues(self, project_id: int, since_ms: int | None, descending: bool) -> list[Item]:
        with self.lock:
            project = self.projects.get(project_id)
            found = [dict(i) for i in (project.issues.values() if project else ())
                     if since_ms is None or i["updated"] >= since_ms]
        return sorted(found, key=lambda i: (i["updated"], i["id"]), reverse=descending)

    def comments_of(self, issue: Item, descending: bool) -> list[Item]:
        with self.lock:
            found = [dict(self.comments[c]) for c in issue["comments"] if c in self.comments]
        return sorted(found, key=lambda c: (c["created"], c["id"]), reverse=descending)

    # ---- writes ---------------------------------------------------------------------------
    def add_comment(self, issue: Item, author: Item, body: Any, properties: list) -> Item:
        with self.lock:
            return dict(self._comment(issue, author, body, self.now_ms(), properties))

    def touch(self, kind: str, count: int, at_ms: int | None = None) -> list[int]:
        """Edit ``count`` issues or comments: ``updated`` becomes ``at_ms`` (default now) and
        the summary or body changes (an edited comment bumps its issue). Returns their ids."""
        with self.lock:
            self._touches += 1
            rng = random.Random(f"touch:{self._touches}")
            when = self.now_ms() if at_ms is None else at_ms
            if kind == "issue":
                pool = {i["id"]: i for p in self.projects.values() for i in p.issues.values()}
            elif kind == "comment":
                pool = self.comments
            else:
                raise ValueError("touch: kind must be issue or comment")
            chosen = choose(rng, sorted(pool), count)
            for ident in chosen:
                item = pool[ident]
                item["updated"] = when
                if kind == "issue":
                    item["summary"] = item["summary"].split(" (edited")[0] + f" (edited {when})"
                else:
                    item["body"] = f"{item['body']} (edited {when})"
                    self.issue(item["issue_key"])["updated"] = when
            return chosen

    def delete(self, kind: str, ident: int) -> bool:
        """Remove an issue (with its comments) or a comment; recorded in :attr:`deleted`."""
        with self.lock:
            if kind == "comment" and ident in self.comments:
                comment = self.comments.pop(ident)
                self.issue(comment["issue_key"])["comments"].remove(ident)
            elif kind == "issue" and (issue := self.issue(str(ident))) is not None:
                del self.projects[issue["project"]].issues[issue["number"]]
                for cid in issue["comments"]:
                    self.comments.pop(cid, None)
            else:
                return False
            self.deleted.append((kind, ident))
            return True
