"""What a GitLab sync walks. Every list is newest-first from a stable first page (ETag → 304).

The notes and approvals of changed merge requests, and the notes of changed issues, come
through GraphQL: one query per page of changed items, by ``iids`` (:mod:`.children`, documents
in :mod:`.graphql`, vetted by the provider table), written as the records of the REST child
lists ``mr_notes``, ``approvals`` and ``issue_notes`` — which a connection whose GitLab refuses
the documents falls back to (:mod:`shared.fetch.groups`), and which read what an earlier sync
missed. :data:`REST_PLAN` reads them per item over REST only.
"""

from __future__ import annotations

import dataclasses
from functools import partial

from shared.fetch.gitlab import children as graphql_children
from shared.fetch.plan import GroupSpec, ListSpec, Parent, ProviderPlan
from shared.records import gitlab as normalize

NEWEST_FIRST = {"order_by": "updated_at", "sort": "desc"}
_IID_PARAM = {"mr_notes": "merge_request_iid", "approvals": "merge_request_iid",
              "issue_notes": "issue_iid", "merge_request_children": "merge_request_iid",
              "issue_children": "issue_iid"}


def _parent(name: str, raw: dict, params) -> Parent:
    kind = "issue" if _IID_PARAM[name] == "issue_iid" else "pull_request"
    return Parent(kind, int(raw["iid"]), {**params, _IID_PARAM[name]: str(raw["iid"])})


MR_NOTES = ListSpec(
    "mr_notes", "GET /projects/{id}/merge_requests/{merge_request_iid}/notes",
    NEWEST_FIRST, "comments",
    lambda raw, ctx, p: normalize.comment(raw, ctx, "pull_request", p.number))
ISSUE_NOTES = ListSpec(
    "issue_notes", "GET /projects/{id}/issues/{issue_iid}/notes", NEWEST_FIRST,
    "comments", lambda raw, ctx, p: normalize.comment(raw, ctx, "issue", p.number))
APPROVALS = ListSpec(
    "approvals", "GET /projects/{id}/merge_requests/{merge_request_iid}/approvals", {},
    "reviews", lambda raw, ctx, p: normalize.review(raw, ctx, p.number), single=True)

MERGE_REQUEST_CHILDREN = GroupSpec(
    "merge_request_children", ("mr_notes", "approvals"), partial(
        graphql_children.read, graphql_children.Kind(
            "merge_request_children", "mergeRequests", "merge_request_notes_page",
            "mergeRequest", MR_NOTES, APPROVALS)))
ISSUE_CHILDREN = GroupSpec(
    "issue_children", ("issue_notes",), partial(
        graphql_children.read, graphql_children.Kind(
            "issue_children", "issues", "issue_notes_page", "issue", ISSUE_NOTES)))

PLAN = ProviderPlan(
    provider="gitlab",
    repositories=ListSpec("repositories", "GET /projects",
                          {"membership": "true", "order_by": "id", "sort": "asc"},
                          "repositories", lambda raw, ctx, p: normalize.repository(raw, ctx),
                          full=True),
    repo_params=lambda repo: {"id": str(repo["external_id"])},
    resources=(
        ListSpec("merge_requests", "GET /projects/{id}/merge_requests",
                 {"state": "all", **NEWEST_FIRST}, "pull_requests",
                 lambda raw, ctx, p: normalize.pull_request(raw, ctx),
                 children=("merge_request_children",)),
        ListSpec("issues", "GET /projects/{id}/issues", {"scope": "all", **NEWEST_FIRST},
                 "issues", lambda raw, ctx, p: normalize.issue(raw, ctx),
                 children=("issue_children",)),
        ListSpec("labels", "GET /projects/{id}/labels", {}, "labels",
                 lambda raw, ctx, p: normalize.label(raw, ctx), full=True),
    ),
    children={"mr_notes": MR_NOTES, "issue_notes": ISSUE_NOTES, "approvals": APPROVALS,
              "merge_request_children": MERGE_REQUEST_CHILDREN,
              "issue_children": ISSUE_CHILDREN},
    parent_of=_parent,
)

REST_PLAN = dataclasses.replace(PLAN, resources=(
    dataclasses.replace(PLAN.resources[0], children=("mr_notes", "approvals")),
    dataclasses.replace(PLAN.resources[1], children=("issue_notes",)),
    PLAN.resources[2]))
