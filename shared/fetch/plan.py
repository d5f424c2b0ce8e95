"""What a provider's sync walks: a declarative list per provider (``github/plan.py``,
``gitlab/plan.py``, ``bitbucket/plan.py``, ``jira/plan.py``), interpreted by
:mod:`shared.fetch.walk` and :mod:`shared.fetch.batch`.

Every list is walked newest-first (sorted by ``updated_at`` descending) from a first page
whose URL never changes, so an unchanged list answers ``304 Not Modified`` to the stored ETag
and costs no quota; the walk stops at the first item older than the cursor minus an overlap
window. ``full`` lists (repositories, labels) are walked whole and reconcile deletions; a full
child list (Bitbucket's participants) reconciles within its parent only.

Where the provider filters by time itself, a list's ``query`` builds its query from the walk's
parameters and the lower bound the walk would stop at (``None`` on a full walk); the
parameters it consumes need not be path parameters of its template. Jira sends JQL
``updated >= …``; Bitbucket, which sends no ETags, narrows the first page with BBQL
``q=updated_on > …``, so an unchanged list costs one request with an empty page.
``items_key`` names the field holding the items when a page is a JSON object
(``{"issues": [...]}``, Bitbucket's ``{"values": [...]}``) rather than a list;
``updated_key`` names the item's update time for the early stop; ``applies`` skips a list a
repository does not have (an issue tracker that is off). A plan's ``connection_params`` adds
settings of the connection (Jira: the account's time zone, which JQL dates are read in) and
``site_of`` the site its ids belong to (:attr:`shared.records.model.Context.site`). Where the
repositories are listed per container (Bitbucket workspaces), ``repository_scopes`` lists the
containers first and the repositories list is walked once per container as one full walk.
Where the kind of connection decides how repositories are listed (a GitHub App installation
lists ``GET /installation/repositories``, a user token ``GET /user/repos``),
``repositories_for`` picks the list from the connection document.

Children of changed items come either from a REST list per item (:class:`ListSpec`, e.g.
GitLab's notes) or, where the provider can batch them, from one vetted GraphQL document for
up to ``batch_size`` items at a time (:class:`BatchSpec`, GitHub's reviews), or several kinds
of children of up to 100 items in one query (:class:`GroupSpec`, GitLab's notes and
approvals), which stands for REST child lists the connection falls back to when the
provider's GraphQL refuses the document.

Embedded children: a REST child list whose ``embedded`` finds its whole answer in the parent's
own list item costs no request — Bitbucket's participants (asked into the pull request list
with ``fields=+values.participants``) and its pull request comments when ``comment_count`` is
0; Jira's comments when the issue's ``fields.comment`` page holds all of them (``total`` =
the comments carried). The answer is written exactly as a one-page walk of that list would
write it (a full list still reconciles within its parent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.records.model import Context

Normalize = Callable[[dict, Context, "Parent"], dict | list[dict] | None]
Params = Mapping[str, str | tuple[str, ...]]  # a tuple value repeats its query parameter
# (the walk's parameters, the ISO lower bound or None for a full walk) → extra query params
Query = Callable[[Mapping[str, str], str | None], Params]


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
    items_key: str | None = None  # a page is an object: its items are under this field
    query: Query | None = None  # provider-side time filter built per walk (see above)
    updated_key: str = "updated_at"  # the item field the early stop reads
    applies: Callable[[dict], bool] | None = None  # repository record → does it have this list
    # a child list only: the parent's raw list item → this list's whole answer when the parent
    # carries it complete (an embedded page, or an empty one a count of zero vouches for);
    # None → read it (see "Embedded children" above)
    embedded: Callable[[dict], Any] | None = None


@dataclass(frozen=True)
class ScopeList:
    """The containers repositories are listed in (Bitbucket workspaces): walked first, each
    item giving the path parameters of one repositories list."""

    template: str
    params: Params
    path_params: Callable[[dict], dict[str, str]]
    items_key: str | None = None


@dataclass(frozen=True)
class BatchSpec:
    """Children of many items per request: GraphQL document ``document`` takes the items'
    node ids (``ids``, at most ``batch_size``) and answers ``nodes``, each with its ``id``,
    its ``number`` and the ``connection`` of children (``nodes`` + ``pageInfo``); a
    connection with more pages is followed with ``page_document`` (``id``, ``after``)."""

    name: str
    kind: str  # the records kind it writes
    document: str
    page_document: str
    connection: str
    node_id: Callable[[dict], str]  # the parent's raw list item → its GraphQL node id
    normalize: Normalize  # one child node → record
    batch_size: int = 100


@dataclass(frozen=True)
class GroupSpec:
    """The children of many items, of several kinds, per GraphQL query: ``read`` (see
    :mod:`shared.fetch.groups`) reads them for up to ``batch_size`` parents and writes them as
    the records of the REST child lists ``children`` (names in the plan's ``children``), under
    whose names they are settled (:mod:`shared.fetch.pending`) and to which the connection
    falls back when the provider's GraphQL refuses the document."""

    name: str
    children: tuple[str, ...]
    read: Callable[..., Any]  # (GroupReader, Context, [Parent]) -> GroupOutcome
    batch_size: int = 100


@dataclass(frozen=True)
class ProviderPlan:
    provider: str
    repositories: ListSpec
    repo_params: Callable[[dict], dict[str, str]]  # repository record → path params
    resources: tuple[ListSpec, ...]
    children: Mapping[str, ListSpec | BatchSpec | GroupSpec] = field(default_factory=dict)
    parent_of: Callable[[str, dict[str, Any], Mapping[str, str]], Parent] | None = None
    connection_params: Callable[[dict], dict[str, str]] | None = None  # connection → params
    site_of: Callable[[dict], str | None] | None = None  # connection → Context.site
    repository_scopes: ScopeList | None = None
    repositories_for: Callable[[dict], ListSpec] | None = None  # connection → its list

    def repositories_of(self, connection: dict) -> ListSpec:
        """The repositories list of this connection (``repositories`` unless chosen)."""
        return self.repositories_for(connection) if self.repositories_for else \
            self.repositories
