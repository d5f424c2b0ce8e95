"""The activity knobs the GitHub and GitLab simulators offer tests alike (:class:`ActivityKnobs`):
``seed_activity``, ``touch``, ``delete`` and the ``deleted`` record, each handed to the
simulator's activity store (:mod:`.activity_store`; what each count and kind means on a
provider is in its ``*_seed`` and ``*_data`` modules). Bitbucket's simulator keeps its own:
it seeds no labels by default and names items by ``<full name>#<id>`` keys.
"""

from __future__ import annotations

from typing import Any


class ActivityKnobs:
    """Mixed into a simulator whose :attr:`activity` is an :class:`~.activity_store.ActivityStore`
    with a ``seed_activity``."""

    activity: Any

    def seed_activity(self, owner: str, repos: int, prs: int, issues: int, comments: int,
                      review_comments: int = 0, reviews: int = 0, labels: int = 5,
                      seed: int = 0) -> list[dict[str, Any]]:
        """Create ``repos`` repositories (GitLab: projects) under ``owner`` and spread ``prs``
        pull (merge) requests, ``issues`` issues, ``comments`` comments, ``review_comments``
        and ``reviews`` over them, with ``labels`` labels each (deterministic per ``seed``;
        GitLab's own system notes come on top); returns the repositories."""
        return self.activity.seed_activity(owner, repos, prs, issues, comments,
                                           review_comments, reviews, labels, seed)

    def touch(self, kind: str, count: int) -> list[int]:
        """Edit ``count`` items of ``kind`` (``pull`` = pull or merge request, ``issue``,
        ``comment``, ``review_comment``): ``updated_at`` becomes now. Returns their ids."""
        return self.activity.touch(kind, count)

    def delete(self, kind: str, id: int) -> bool:
        """Remove an item (recorded in :attr:`deleted`); it vanishes from every list."""
        return self.activity.delete(kind, id)

    @property
    def deleted(self) -> list:
        """Every removal so far (:class:`~keyway.simulators.activity.Deletion`)."""
        return list(self.activity.deleted)
