"""What a GitLab sync walks. Every list is newest-first from a stable first page (ETag → 304)."""

from __future__ import annotations

from shared.fetch.plan import ListSpec, Parent, ProviderPlan
from shared.records import gitlab as normalize

NEWEST_FIRST = {"order_by": "updated_at", "sort": "desc"}
_IID_PARAM = {"mr_notes": "merge_request_iid", "approvals": "merge_request_iid",
              "issue_notes": "issue_iid"}


def _parent(name: str, raw: dict, params) -> Parent:
    kind = "issue" if name == "issue_notes" else "pull_request"
    return Parent(kind, int(raw["iid"]), {**params, _IID_PARAM[name]: str(raw["iid"])})


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
                 children=("mr_notes", "approvals")),
        ListSpec("issues", "GET /projects/{id}/issues", {"scope": "all", **NEWEST_FIRST},
                 "issues", lambda raw, ctx, p: normalize.issue(raw, ctx),
                 children=("issue_notes",)),
        ListSpec("labels", "GET /projects/{id}/labels", {}, "labels",
                 lambda raw, ctx, p: normalize.label(raw, ctx), full=True),
    ),
    children={
        "mr_notes": ListSpec(
            "mr_notes", "GET /projects/{id}/merge_requests/{merge_request_iid}/notes",
            NEWEST_FIRST, "comments",
            lambda raw, ctx, p: normalize.comment(raw, ctx, "pull_request", p.number)),
        "issue_notes": ListSpec(
            "issue_notes", "GET /projects/{id}/issues/{issue_iid}/notes", NEWEST_FIRST,
            "comments", lambda raw, ctx, p: normalize.comment(raw, ctx, "issue", p.number)),
        "approvals": ListSpec(
            "approvals", "GET /projects/{id}/merge_requests/{merge_request_iid}/approvals", {},
            "reviews", lambda raw, ctx, p: normalize.review(raw, ctx, p.number), single=True),
    },
    parent_of=_parent,
)
