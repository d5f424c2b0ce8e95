"""GitHub's JSON shapes for the metadata endpoints (REST API version 2022-11-28, as the docs
at docs.github.com/rest/{pulls,issues}/... show them), rendered from the simulator's stored
items with every URL pointing at the simulator.

Review comments carry ``diff_hunk``, ``path`` and ``commit_id`` like GitHub's do: code reaches
a client through them, so a metadata-only fetcher has to drop those fields itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from keyway.simulators.activity import Item, iso, sha
from keyway.simulators.github_api import account_urls, node_id, repo_json

REACTION_KEYS = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")


def _when(epoch: int | None) -> str | None:
    return None if epoch is None else iso(epoch)


@dataclass(frozen=True)
class Site:
    """A repository's addresses on the simulator (``host`` ends with ``/``)."""

    host: str
    repo: dict[str, Any]

    @property
    def name(self) -> str:
        return self.repo["full_name"]

    @property
    def api(self) -> str:
        return f"{self.host}api/v3/repos/{self.name}"

    @property
    def web(self) -> str:
        return f"{self.host}{self.name}"


def user_json(user: Item, host: str) -> dict[str, Any]:
    """A "simple user" (an issue's ``user``, a comment's author...)."""
    return {"login": user["login"], "id": user["id"],
            "node_id": node_id("04", "User", user["id"]), **account_urls(user["login"], host),
            "type": user.get("type", "User"), "user_view_type": "public", "site_admin": False}


def _association(user: Item) -> str:
    return "MEMBER" if user["id"] % 3 == 0 else "CONTRIBUTOR"


def _reactions(url: str) -> dict[str, Any]:
    return {"url": f"{url}/reactions", "total_count": 0, **dict.fromkeys(REACTION_KEYS, 0)}


def label_json(label: Item, site: Site) -> dict[str, Any]:
    return {"id": label["id"], "node_id": node_id("05", "Label", label["id"]),
            "url": f"{site.api}/labels/{quote(label['name'])}", "name": label["name"],
            "color": label["color"], "default": label["default"],
            "description": label["description"]}


def issue_json(item: Item, site: Site) -> dict[str, Any]:
    """An issue as ``/issues`` lists it; a pull request also gets ``pull_request``."""
    number, host = item["number"], site.host
    api, pull = f"{site.api}/issues/{number}", item["pull_id"] is not None
    body = {
        "url": api, "repository_url": site.api, "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments", "events_url": f"{api}/events",
        "html_url": f"{site.web}/{'pull' if pull else 'issues'}/{number}", "id": item["id"],
        "node_id": node_id("05", "Issue", item["id"]), "number": number,
        "title": item["title"], "user": user_json(item["user"], host),
        "labels": [label_json(label, site) for label in item["labels"]],
        "state": item["state"], "locked": item["locked"],
        "assignee": user_json(item["assignee"], host) if item["assignee"] else None,
        "assignees": [user_json(item["assignee"], host)] if item["assignee"] else [],
        "milestone": None, "comments": item["comments"],
        "created_at": iso(item["created"]), "updated_at": iso(item["updated"]),
        "closed_at": _when(item["closed"]), "author_association": _association(item["user"]),
        "active_lock_reason": None, "body": item["body"], "reactions": _reactions(api),
        "timeline_url": f"{api}/timeline", "performed_via_github_app": None,
        "state_reason": "completed" if item["state"] == "closed" else None,
    }
    if pull:
        body["draft"] = item["draft"]
        body["pull_request"] = {"url": f"{site.api}/pulls/{number}",
                                "html_url": f"{site.web}/pull/{number}",
                                "diff_url": f"{site.web}/pull/{number}.diff",
                                "patch_url": f"{site.web}/pull/{number}.patch",
                                "merged_at": _when(item["merged"])}
    return body


def _branch(site: Site, ref: str, commit: str, repo: dict[str, Any]) -> dict[str, Any]:
    owner = repo["owner"]
    return {"label": f"{owner['login']}:{ref}", "ref": ref, "sha": commit,
            "user": owner, "repo": repo}


def pull_json(item: Item, site: Site, repo: dict[str, Any]) -> dict[str, Any]:
    """A pull request as ``/pulls`` lists it (``repo``: the repository, rendered once)."""
    number, host = item["number"], site.host
    api, issue = f"{site.api}/pulls/{number}", f"{site.api}/issues/{number}"
    html, head = f"{site.web}/pull/{number}", sha(site.name, number, "head")
    links = {"self": api, "html": html, "issue": issue, "comments": f"{issue}/comments",
             "review_comments": f"{api}/comments",
             "review_comment": f"{site.api}/pulls/comments{{/number}}",
             "commits": f"{api}/commits", "statuses": f"{site.api}/statuses/{head}"}
    return {
        "url": api, "id": item["pull_id"],
        "node_id": node_id("011", "PullRequest", item["pull_id"]), "html_url": html,
        "diff_url": f"{html}.diff", "patch_url": f"{html}.patch", "issue_url": issue,
        "commits_url": links["commits"], "review_comments_url": links["review_comments"],
        "review_comment_url": links["review_comment"], "comments_url": links["comments"],
        "statuses_url": links["statuses"], "number": number, "state": item["state"],
        "locked": item["locked"], "title": item["title"],
        "user": user_json(item["user"], host), "body": item["body"],
        "labels": [label_json(label, site) for label in item["labels"]], "milestone": None,
        "active_lock_reason": None, "created_at": iso(item["created"]),
        "updated_at": iso(item["updated"]), "closed_at": _when(item["closed"]),
        "merged_at": _when(item["merged"]),
        "merge_commit_sha": sha(site.name, number, "merge") if item["merged"] else None,
        "assignee": user_json(item["assignee"], host) if item["assignee"] else None,
        "assignees": [user_json(item["assignee"], host)] if item["assignee"] else [],
        "requested_reviewers": [], "requested_teams": [],
        "head": _branch(site, f"feature-{number}", head, repo),
        "base": _branch(site, "main", sha(site.name, number, "base"), repo),
        "_links": {key: {"href": href} for key, href in links.items()},
        "author_association": _association(item["user"]), "auto_merge": None,
        "draft": item["draft"],
    }


def comment_json(item: Item, site: Site) -> dict[str, Any]:
    """An issue comment; on a pull request its ``html_url`` is ``.../pull/N#issuecomment-…``."""
    ident, number = item["id"], item["number"]
    url = f"{site.api}/issues/comments/{ident}"
    where = "pull" if item.get("on_pull") else "issues"
    return {"url": url, "html_url": f"{site.web}/{where}/{number}#issuecomment-{ident}",
            "issue_url": f"{site.api}/issues/{number}", "id": ident,
            "node_id": node_id("012", "IssueComment", ident),
            "user": user_json(item["user"], site.host), "created_at": iso(item["created"]),
            "updated_at": iso(item["updated"]), "author_association": _association(
                item["user"]), "body": item["body"], "reactions": _reactions(url),
            "performed_via_github_app": None}


def _hunk(line: int) -> str:
    return (f"@@ -{line},6 +{line},7 @@ def handle(request):\n     payload = parse(request)\n"
            f"-    return payload\n+    return validate(payload)")


def review_comment_json(item: Item, site: Site) -> dict[str, Any]:
    """A pull request review comment, code excerpt (``diff_hunk``) included like GitHub's."""
    ident, number, line = item["id"], item["number"], item["line"]
    url, pull = f"{site.api}/pulls/comments/{ident}", f"{site.api}/pulls/{number}"
    html, head = f"{site.web}/pull/{number}#discussion_r{ident}", sha(site.name, number, "head")
    return {
        "url": url, "pull_request_review_id": item["review_id"], "id": ident,
        "node_id": node_id("024", "PullRequestReviewComment", ident),
        "diff_hunk": _hunk(line), "path": item["path"], "position": line % 40 + 1,
        "original_position": line % 40 + 1, "commit_id": head, "original_commit_id": head,
        "user": user_json(item["user"], site.host), "body": item["body"],
        "created_at": iso(item["created"]), "updated_at": iso(item["updated"]),
        "html_url": html, "pull_request_url": pull,
        "author_association": _association(item["user"]),
        "_links": {"self": {"href": url}, "html": {"href": html},
                   "pull_request": {"href": pull}},
        "reactions": _reactions(url), "start_line": None, "original_start_line": None,
        "start_side": None, "line": line, "original_line": line, "side": "RIGHT",
        "subject_type": "line",
    }


def review_json(item: Item, site: Site) -> dict[str, Any]:
    ident, number = item["id"], item["number"]
    html, pull = f"{site.web}/pull/{number}#pullrequestreview-{ident}", \
        f"{site.api}/pulls/{number}"
    return {"id": ident, "node_id": node_id("017", "PullRequestReview", ident),
            "user": user_json(item["user"], site.host), "body": item["body"],
            "state": item["state"], "html_url": html, "pull_request_url": pull,
            "author_association": _association(item["user"]),
            "_links": {"html": {"href": html}, "pull_request": {"href": pull}},
            "submitted_at": iso(item["created"]),
            "commit_id": sha(site.name, number, "head")}


def repo_view(repo: dict[str, Any], host: str, open_issues: int) -> dict[str, Any]:
    """The list shape of a repository with its open issues counted now: a pull request's
    ``head.repo``/``base.repo`` and a webhook's ``repository`` (no ``temp_clone_token``,
    ``network_count``, ``organization``: those are the full one's, and GitHub's webhook
    schemas refuse the full one's ``temp_clone_token: null``)."""
    return {**repo_json(repo, host), "open_issues_count": open_issues,
            "open_issues": open_issues}


def repository_json(repo: dict[str, Any], host: str, open_issues: int) -> dict[str, Any]:
    """``GET /repos/{owner}/{repo}``: the list shape plus the full repository's fields."""
    body = repo_json(repo, host)
    return {**body, "open_issues_count": open_issues, "open_issues": open_issues,
            "network_count": 0, "subscribers_count": 1, "temp_clone_token": None,
            "organization": body["owner"]}
