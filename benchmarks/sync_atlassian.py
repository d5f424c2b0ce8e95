"""The Bitbucket Cloud and Jira Cloud rows of the ``sync`` part: their simulators, plans and
request minimums (the scenario and the counting are :mod:`benchmarks.sync_efficiency`'s).

Neither provider sends ETags, so an unchanged re-sync costs one narrowed page per list rather
than 304s, and the full sync is compared with **the fewest requests any client could read the
same records with** from the provider's published API:

* **Bitbucket** (REST 2.0; ``pagelen`` default 10): 1 page of workspaces and 1 of repositories
  per workspace (``pagelen`` 100); per repository ``ceil(pull requests / 50)`` pages of pull
  requests (50 is that list's maximum ``pagelen``) with their ``participants`` added by the
  partial-response ``fields=+values.participants`` (so approvals cost nothing more), and
  ``ceil(issues / PAGE_ISSUES)`` pages of issues where the tracker is on; then per pull request
  ``ceil(comments / 100)`` comment pages — none where its ``comment_count`` is 0 — and per issue
  ``max(1, ceil(comments / 100))``: an issue carries no comment count and there is no
  repository-wide comment list, so each issue's list must be asked once.
* **Jira** (REST v3): ``ceil(projects / 100)`` pages of ``/project/search``;
  ``ceil(issues / 100)`` pages of ``/search/jql`` over the whole site (``maxResults`` 100 with
  the fields keyway keeps; one JQL could cover every project, keyway asks one per project, so it
  may pay up to one partial page per project more); every issue's ``comment`` field carries its
  first ``EMBEDDED_COMMENTS`` comments and their ``total``, so only an issue with more needs
  ``ceil((total - EMBEDDED_COMMENTS) / 100)`` comment pages.
"""

from __future__ import annotations

import math
from typing import Any

from keyway.simulators import BitbucketSimulator, JiraSimulator
from keyway.simulators.jira_api import EMBEDDED_COMMENTS
from shared.fetch.bitbucket.plan import PLAN as BITBUCKET_PLAN
from shared.fetch.jira.plan import PLAN as JIRA_PLAN

PR_PAGE = 50  # Bitbucket's maximum pagelen for the pull request list
PAGE_ISSUES = 50  # Bitbucket's issue list, as the simulator serves it (see docs/PROVIDERS.md)
PAGE = 100
JIRA_ZONE = "UTC"
JIRA_COMMENTS = "/rest/api/3/issue/{issueIdOrKey}/comment"


def pages(n: int, size: int = PAGE) -> int:
    """Requests to list ``n`` items ``size`` a page (an empty list still costs one)."""
    return max(1, math.ceil(n / size))


def bitbucket_minimum(sim: BitbucketSimulator) -> dict[str, Any]:
    acts = list(sim.activity.repos.values())
    trackers = [a for a in acts if a.repo["has_issues"]]
    workspaces = {a.repo["workspace"]["slug"] for a in acts}
    repo = "/repositories/{workspace}/{repo_slug}"
    lists = {
        "/user/workspaces": pages(len(workspaces)),
        "/repositories/{workspace}": sum(
            pages(sum(1 for a in acts if a.repo["workspace"]["slug"] == w)) for w in workspaces),
        f"{repo}/pullrequests": sum(pages(len(a.pulls.items), PR_PAGE) for a in acts),
        f"{repo}/issues": sum(pages(len(a.issues.items), PAGE_ISSUES) for a in trackers),
    }
    pr_comments = sum(math.ceil(len(a.threads.get(("pr", n), ())) / PAGE)
                      for a in acts for n in a.pulls.items)
    issue_comments = sum(pages(len(a.threads.get(("issue", n), ())))
                         for a in trackers for n in a.issues.items)
    children = {f"{repo}/pullrequests/{{pull_request_id}}/comments": pr_comments,
                f"{repo}/pullrequests/{{pull_request_id}}": 0,  # participants: in the list
                f"{repo}/issues/{{issue_id}}/comments": issue_comments}
    prs = sum(len(a.pulls.items) for a in acts)
    silent = sum(1 for a in acts for n in a.pulls.items if not a.threads.get(("pr", n)))
    return {"lists": lists, "children": children, "derivation": {
        "list_pages": sum(lists.values()), "pull_requests": prs,
        "pull_requests_without_comments": silent, "pr_comment_pages": pr_comments,
        "issues": sum(len(a.issues.items) for a in trackers),
        "issue_comment_pages": issue_comments}}


def jira_minimum(sim: JiraSimulator) -> dict[str, Any]:
    projects = list(sim.data.projects.values())
    issues = [i for p in projects for i in p.issues.values()]
    lists = {"/rest/api/3/project/search": pages(len(projects)),
             "/rest/api/3/search/jql": pages(len(issues))}
    per_project = sum(pages(len(p.issues)) for p in projects)
    follow = sum(math.ceil(max(len(i["comments"]) - EMBEDDED_COMMENTS, 0) / PAGE)
                 for i in issues)
    return {"lists": lists, "children": {JIRA_COMMENTS: follow}, "derivation": {
        "list_pages": sum(lists.values()), "issues": len(issues),
        "search_pages_one_query_per_project": per_project,
        "issues_over_embedded": sum(1 for i in issues if len(i["comments"]) > EMBEDDED_COMMENTS),
        "embedded_comments": EMBEDDED_COMMENTS, "comment_follow_ups": follow}}


def bitbucket_setup(scale: dict) -> tuple:
    """(simulator, plan, token scopes, connection document or None, minimum function)."""
    sim = BitbucketSimulator(rate_limit=10_000_000)
    return sim, BITBUCKET_PLAN, ("account", "pullrequest", "issue"), "acme", None, \
        bitbucket_minimum


def jira_setup(scale: dict) -> tuple:
    sim = JiraSimulator(rate_limit=10_000_000, time_zone=JIRA_ZONE)
    return sim, JIRA_PLAN, ("read:jira-work", "read:jira-user"), "acme", _jira_connection, \
        jira_minimum


def _jira_connection(sim: JiraSimulator) -> dict[str, Any]:
    return {"tenant": "t-1", "provider": "jira", "api_base": sim.site_api_url,
            "site": {"id": sim.cloud_id, "url": sim.site_url, "name": "acme"},
            "account": {"id": sim.account.login, "login": "Jane Doe", "time_zone": JIRA_ZONE}}


def api_base(sim) -> str:
    return sim.site_api_url if isinstance(sim, JiraSimulator) else sim.api_url


def template_prefix(sim) -> str:
    """What the request log's route templates start with before the API's own paths."""
    return "/ex/jira/{cloud_id}" if isinstance(sim, JiraSimulator) else \
        sim.api_url[len(sim.url):]
