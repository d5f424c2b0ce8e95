"""What a provider's sync walks: a declarative list per provider (``github/plan.py``,
``gitlab/plan.py``, ``bitbucket/plan.py``), interpreted by :mod:`shared.fetch.walk`.

Every list is walked newest-first (sorted by ``updated_at`` descending) from a first page
whose URL never changes, so an unchanged list answers ``304 Not Modified`` to the stored ETag
and costs no quota; the walk stops at the first item older than the cursor minus an overlap
window. ``full`` lists (repositories, labels) are walked whole and reconcile deletions; a full
child list (Bitbucket's participants) reconciles within its parent only.

Providers without ETags (Bitbucket) narrow the first page instead: ``since`` turns the walk's
lower bound into query parameters (``q=updated_on > …``), so an unchanged list costs one
request with an empty page. A page that is an envelope names its item list in ``items``
(Bitbucket's ``values``); ``updated_key`` names the item's update time for the early stop;
``applies`` skips a list a repository does not have (an issue tracker that is off). Where the
repositories are listed per container (Bitbucket workspaces), ``repository_scopes`` lists the
containers first and the repositories list is walked once per container as one full walk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.records.model import Context

Normalize = Callable[[dict, Context, "Parent"], dict | list[dict] | None]
Params = Mapping[str, str | tuple[str, ...]]  # a tuple value repeats its query parameter


@dataclass(frozen=True)
class Parent:
    """The item a child list belongs to (a pull request's reviews, an issue's notes)."""

    kind: str  # "pull_request" | "issue"
    number: int
    path_params: Mapping[str, str]


@dataclass(frozen=True)
class ListSpec:
    name: str
    template: str
    params: Params
    kind: str  # the records kind it writes
    normalize: Normalize
    full: bool = False  # walk everything; reconcile deletions (no updated_at ordering)
    single: bool = False  # the endpoint answers one object, not a list
    children: tuple[str, ...] = ()  # child specs to fetch for every changed item
    items: str | None = None  # the page is an object holding its items under this key
    updated_key: str = "updated_at"  # the item field the early stop reads
    since: Callable[[str], Params] | None = None  # lower bound (ISO) → query parameters
    applies: Callable[[dict], bool] | None = None  # repository record → does it have this list


@dataclass(frozen=True)
class ScopeList:
    """The containers repositories are listed in (Bitbucket workspaces): walked first, each
    item giving the path parameters of one repositories list."""

    template: str
    params: Params
    path_params: Callable[[dict], dict[str, str]]
    items: str | None = None


@dataclass(frozen=True)
class ProviderPlan:
    provider: str
    repositories: ListSpec
    repo_params: Callable[[dict], dict[str, str]]  # repository record → path params
    resources: tuple[ListSpec, ...]
    children: Mapping[str, ListSpec] = field(default_factory=dict)
    parent_of: Callable[[str, dict[str, Any], Mapping[str, str]], Parent] | None = None
    repository_scopes: ScopeList | None = None
