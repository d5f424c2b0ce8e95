"""The Bitbucket sync plan: every list it walks is an allowlisted metadata endpoint, lists are
narrowed by updated_on once a cursor exists, issues are skipped where the tracker is off, and
repositories are listed per workspace."""

from __future__ import annotations

from shared.fetch.bitbucket.plan import PLAN, PR_STATES, repo_params, updated_since
from shared.providers import registry

SPEC = registry.get("bitbucket")


def every_list():
    return [PLAN.repositories, *PLAN.resources, *PLAN.children.values()]


def test_every_template_the_plan_uses_is_allowlisted_and_read_only():
    templates = [s.template for s in every_list()] + [PLAN.repository_scopes.template]
    assert all(t in SPEC.api.allowlist and t.startswith("GET ") for t in templates)
    assert not [t for t in templates if "/src" in t or "/diff" in t or "/commits" in t]


def test_lists_are_newest_first_and_narrowed_by_bbql_on_updated_on():
    pulls, issues = PLAN.resources
    assert pulls.params == {"sort": "-updated_on", "state": PR_STATES,
                            "fields": "+values.participants"}  # approvals come with the list
    assert issues.params == {"sort": "-updated_on", "pagelen": "100"}  # the table's 50 is the
    # pull request list's maximum; the other lists serve up to 100
    assert set(PR_STATES) == {"OPEN", "MERGED", "DECLINED", "SUPERSEDED"}  # not just OPEN
    assert pulls.items_key == issues.items_key == "values" and pulls.updated_key == "updated_on"
    assert pulls.query is issues.query is updated_since
    params = repo_params({"full_name": "team_name/repo_name"})
    assert updated_since(params, "2024-05-01T10:00:00.000000Z") == {
        "q": "updated_on > 2024-05-01T10:00:00.000000+00:00"}
    assert updated_since(params, None) == {}  # a first walk reads everything
    assert PLAN.repositories.query is None and PLAN.repositories.full  # reconciled whole


def test_issues_are_walked_only_where_the_tracker_is_on():
    issues = PLAN.resources[1]
    assert issues.applies({"has_issues": True}) and issues.applies({"has_issues": None})
    assert not issues.applies({"has_issues": False})
    assert PLAN.resources[0].applies is None


def test_repositories_are_listed_per_workspace_and_threads_address_their_children():
    scopes = PLAN.repository_scopes
    access = {"type": "workspace_access", "workspace": {"slug": "team_name", "uuid": "{w}"}}
    assert scopes.path_params(access) == {"workspace": "team_name"}
    params = repo_params({"full_name": "team_name/repo_name"})
    assert params == {"workspace": "team_name", "repo_slug": "repo_name"}
    pr = PLAN.parent_of("participants", {"id": 7}, params)
    assert (pr.kind, pr.number, pr.path_params["pull_request_id"]) == ("pull_request", 7, "7")
    issue = PLAN.parent_of("issue_comments", {"id": 3}, params)
    assert (issue.kind, issue.path_params["issue_id"]) == ("issue", "3")
    participants = PLAN.children["participants"]
    assert participants.single and participants.full  # approvals reconciled per pull request


def test_children_the_pull_request_list_carries_are_not_asked_for_again():
    comments, participants = PLAN.children["pr_comments"], PLAN.children["participants"]
    listed = {"id": 7, "comment_count": 0, "participants": []}
    assert participants.embedded(listed) is listed  # the list item answers for its approvals
    assert participants.embedded({"id": 7, "comment_count": 0}) is None  # not added: read it
    assert comments.embedded(listed) == {"values": []}  # a count of 0 vouches for none
    assert comments.embedded({**listed, "comment_count": 2}) is None
    assert comments.embedded({"id": 7}) is None  # no count: read
    assert comments.embedded({"id": 7, "comment_count": False}) is None  # not a count of 0
    assert PLAN.children["issue_comments"].embedded is None  # an issue carries no count
