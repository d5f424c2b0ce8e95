"""Seeded GitLab activity as the simulator serves it: :class:`GitLabActivity` holds every
project's merge requests, issues, notes, approvals and labels (:mod:`.gitlab_seed` makes
them), answers the API's reads, takes its one write (a new note) and fills in the hooks of
the ``touch`` and ``delete`` knobs (:mod:`.activity_store`), whose removals are kept in
:attr:`~GitLabActivity.deleted`. Thread-safe; see :mod:`.activity` for the indexes.

Kinds (shared with GitHub's store): ``pull`` = merge request (by global id), ``issue``,
``comment`` = user note, ``review_comment`` = diff note, ``review`` = approval, ``label``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from urllib.parse import unquote

from keyway.simulators.activity import Item, Query
from keyway.simulators.activity_store import drop_by_id, drop_label
from keyway.simulators.gitlab_api import GitLabData
from keyway.simulators.gitlab_seed import FIRST_ID, NOTE_KINDS, GitLabSeeding, ProjectActivity
from keyway.simulators.oauth_model import Account

ORDER = {"created_at": "created", "updated_at": "updated"}


class GitLabActivity(GitLabSeeding):
    """Every project's activity, the users who author it and the deletion record."""

    def __init__(self, data: GitLabData, clock: Callable[[], float]) -> None:
        ids = {kind: itertools.count(first) for kind, first in FIRST_ID.items()
               if kind not in NOTE_KINDS}
        ids.update(dict.fromkeys(NOTE_KINDS, itertools.count(FIRST_ID["comment"])))
        super().__init__(clock, [{"id": 8_000 + i, "username": f"dev-{i:03d}",
                                  "name": f"Developer {i}"} for i in range(1, 41)], ids)
        self.data = data
        self.projects: dict[int, ProjectActivity] = {}
        self._keys: dict[str, ProjectActivity] = {}  # "id" and "group/project" -> activity

    # ---- reads (the API) ----------------------------------------------------------------------
    def find(self, ident: str) -> ProjectActivity | None:
        """A project by numeric id or (url-encoded) ``group/project`` path."""
        wanted = unquote(ident).lower()
        with self.lock:
            if wanted not in self._keys:  # new projects since the last miss: re-key them all
                for project in self.data.list():
                    act = self.projects.setdefault(project["id"], ProjectActivity(project))
                    self._keys[str(project["id"])] = self._keys[act.name.lower()] = act
            return self._keys.get(wanted)

    def page(self, act: ProjectActivity, collection: str,
             query: Query) -> tuple[list[Item], int]:
        """A page of ``merge_requests`` or ``issues`` (copies)."""
        with self.lock:
            items, total = getattr(act, collection).query(query)
            return [dict(item) for item in items], total

    def thread(self, act: ProjectActivity, kind: str, iid: int) -> Item | None:
        """A copy of merge request (``MergeRequest``) or issue (``Issue``) ``iid``."""
        with self.lock:
            found = act.by_iid.get((kind, iid))
            return None if found is None else dict(found)

    def notes(self, act: ProjectActivity, kind: str, iid: int, order: str,
              descending: bool) -> list[Item] | None:
        """A noteable's notes (system ones included) in ``order``; None if no such thread."""
        key = ORDER.get(order, "created")
        with self.lock:
            if (kind, iid) not in act.by_iid:
                return None
            found = [dict(act.notes[i]) for i in act.threads.get((kind, iid), [])]
        return sorted(found, key=lambda n: (n[key], n["id"]), reverse=descending)

    def approvals(self, act: ProjectActivity, iid: int) -> list[Item]:
        with self.lock:
            return [dict(a) for a in act.approvals.get(iid, [])]

    def labels(self, act: ProjectActivity) -> list[Item]:
        with self.lock:
            return [dict(label) for label in act.labels]

    # ---- writes (the API and the knobs) -------------------------------------------------------
    def add_note(self, act: ProjectActivity, kind: str, iid: int, author: Account,
                 body: str) -> Item | None:
        """A new user note by ``author`` (bumps the noteable); None if no such thread."""
        with self.lock:
            thread = act.by_iid.get((kind, iid))
            if thread is None:
                return None
            now = int(self.clock())
            note = {"id": next(self._ids["comment"]), "noteable_type": kind, "iid": iid,
                    "noteable_id": thread["id"], "project_id": act.project["id"],
                    "user": {"id": author.id, "username": author.login, "name": author.name},
                    "body": body, "created": now, "updated": now, "system": False,
                    "type": None}
            act.notes[note["id"]] = note
            act.threads[(kind, iid)].append(note["id"])
            self._where["comment"][note["id"]] = act
            thread["notes"] += 1
            self._retime(act, thread, now)
            return dict(note)

    # ---- the knobs' hooks (activity_store) ----------------------------------------------------
    def _touched(self, act: ProjectActivity, kind: str, item: Item, now: int) -> None:
        if kind in ("pull", "issue"):
            self._retime(act, item, now)
        else:  # an edited note touches its noteable, as GitLab's do
            item["updated"] = now
            self._retime(act, act.by_iid[(item["noteable_type"], item["iid"])], now)

    @staticmethod
    def _item(act: ProjectActivity, kind: str, ident: int) -> Item:
        if kind in ("pull", "issue"):
            return (act.merge_requests if kind == "pull" else act.issues).items[ident]
        return act.notes[ident]

    @staticmethod
    def _retime(act: ProjectActivity, thread: Item, now: int) -> None:
        old, thread["updated"] = thread["updated"], now
        act.collection(thread).reindex(thread["id"], old)

    def _remove(self, act: ProjectActivity, kind: str, ident: int,
                now: int) -> list[tuple[str, int]]:
        """A merge request or issue takes its notes and approvals along."""
        if kind == "label":
            drop_label(act, act.by_iid.values(), ident)
        elif kind == "review":
            drop_by_id(act.approvals.values(), ident)
        elif kind in ("comment", "review_comment"):
            note = act.notes.pop(ident)
            act.threads[(note["noteable_type"], note["iid"])].remove(ident)
            act.by_iid[(note["noteable_type"], note["iid"])]["notes"] -= 1
        else:
            return self._remove_thread(act, self._item(act, kind, ident))
        return [(kind, ident)]

    def _remove_thread(self, act: ProjectActivity, thread: Item) -> list[tuple[str, int]]:
        """A merge request or issue with its notes and approvals."""
        kind, iid = thread["noteable_type"], thread["iid"]
        act.collection(thread).remove(thread["id"])
        del act.by_iid[(kind, iid)]
        removed = [("pull" if kind == "MergeRequest" else "issue", thread["id"])]
        for note_id in act.threads.pop((kind, iid), []):
            note = act.notes.pop(note_id)
            if not note["system"]:
                note_kind = "review_comment" if note["type"] == "DiffNote" else "comment"
                self._where[note_kind].pop(note_id, None)
                removed.append((note_kind, note_id))
        for approval in act.approvals.pop(iid, []) if kind == "MergeRequest" else []:
            self._where["review"].pop(approval["id"], None)
            removed.append(("review", approval["id"]))
        return removed
