"""Bitbucket Cloud's REST 2.0 JSON shapes (developer.atlassian.com/cloud/bitbucket/rest),
rendered from the simulator's stored items with every link pointing at the simulator: accounts,
workspace access, repositories, pull requests (with ``participants`` on the single object
only, as Bitbucket lists them), comments and issues. Times are ``2015-04-06T15:23:38.179678
+00:00`` (microseconds and an offset), as Bitbucket's are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from keyway.simulators.activity import Item, sha

API = "/2.0"


def when(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Site:
    """The simulator's addresses (``host`` ends without ``/``)."""

    host: str

    @property
    def api(self) -> str:
        return self.host + API

    def link(self, path: str) -> dict[str, str]:
        return {"href": self.host + path}


def account_json(user: Item | None, site: Site) -> dict[str, Any] | None:
    """An account as Bitbucket embeds it (``author``, ``user``, ``reporter``…)."""
    if user is None:
        return None
    uuid = quote(user["uuid"], safe="")
    return {"display_name": user["display_name"], "type": "user", "uuid": user["uuid"],
            "account_id": f"557058:{user['uuid'][1:-1]}", "nickname": user["nickname"],
            "links": {"self": {"href": f"{site.api}/users/{uuid}"},
                      "avatar": site.link(f"/account/{uuid}/avatar/32/"),
                      "html": site.link(f"/{uuid}/")}}


def workspace_json(ws: Item, site: Site) -> dict[str, Any]:
    return {"type": "workspace", "uuid": ws["uuid"], "name": ws["name"], "slug": ws["slug"],
            "links": {"self": {"href": f"{site.api}/workspaces/{ws['slug']}"},
                      "html": site.link(f"/{ws['slug']}/"),
                      "avatar": site.link(f"/workspaces/{ws['slug']}/avatar/")}}


def workspace_access_json(ws: Item, site: Site) -> dict[str, Any]:
    """An entry of ``GET /user/workspaces``."""
    return {"type": "workspace_access", "administrator": False,
            "workspace": {"type": "workspace_base", "uuid": ws["uuid"], "slug": ws["slug"],
                          "links": {"self": {"href": f"{site.api}/workspaces/{ws['slug']}"}}}}


def repo_ref(repo: Item, site: Site) -> dict[str, Any]:
    full = repo["full_name"]
    return {"type": "repository", "full_name": full, "name": repo["name"], "uuid": repo["uuid"],
            "links": {"self": {"href": f"{site.api}/repositories/{full}"},
                      "html": site.link(f"/{full}"), "avatar": site.link(f"/{full}/avatar/32/")}}


def repository_json(repo: Item, site: Site) -> dict[str, Any]:
    full = repo["full_name"]
    links = {**repo_ref(repo, site)["links"],
             "pullrequests": {"href": f"{site.api}/repositories/{full}/pullrequests"},
             "clone": [{"name": "https", "href": f"{site.host}/{full}.git"}]}
    if repo["has_issues"]:
        links["issues"] = {"href": f"{site.api}/repositories/{full}/issues"}
    return {**repo_ref(repo, site), "links": links, "slug": repo["slug"], "scm": "git",
            "description": "", "website": None, "language": "python", "size": 1_024_000,
            "owner": {"type": "team", "uuid": repo["workspace"]["uuid"],
                      "username": repo["workspace"]["slug"],
                      "display_name": repo["workspace"]["name"]},
            "workspace": workspace_json(repo["workspace"], site),
            "is_private": repo["is_private"], "fork_policy": "no_public_forks",
            "created_on": when(repo["created"]), "updated_on": when(repo["updated"]),
            "mainbranch": {"type": "branch", "name": repo["mainbranch"]},
            "has_issues": repo["has_issues"], "has_wiki": False, "parent": None}


def participant_json(entry: Item, site: Site) -> dict[str, Any]:
    return {"type": "participant", "user": account_json(entry["user"], site),
            "role": entry["role"], "approved": entry["state"] == "approved",
            "state": entry["state"], "participated_on": when(entry["at"])}


def pull_request_json(item: Item, site: Site, participants: list[Item] | None = None
                      ) -> dict[str, Any]:
    """A pull request; ``participants`` given → the single object's ``participants`` too."""
    repo = item["repo"].repo
    full, number = repo["full_name"], item["id"]
    base = f"{site.api}/repositories/{full}/pullrequests/{number}"
    merged = item["state"] == "MERGED"

    def side(branch: str, head: str) -> dict[str, Any]:
        return {"branch": {"name": branch}, "repository": repo_ref(repo, site),
                "commit": {"type": "commit", "hash": sha(full, number, head)[:12]}}

    body = {"type": "pullrequest", "id": number, "title": item["title"],
            "description": f"Seeded pull request {number}.",
            "state": item["state"], "draft": item["draft"],
            "author": account_json(item["author"], site),
            "source": side(f"feature-{number}", "head"), "destination": side("main", "base"),
            "merge_commit": {"type": "commit", "hash": sha(full, number, "merge")[:12]}
            if merged else None,
            "comment_count": item["comments"], "task_count": 0, "close_source_branch": True,
            "closed_by": account_json(item["author"], site) if item["state"] != "OPEN" else None,
            "reason": "", "created_on": when(item["created"]), "updated_on": when(item["updated"]),
            "links": {"self": {"href": base}, "html": site.link(f"/{full}/pull-requests/{number}"),
                      "comments": {"href": f"{base}/comments"},
                      "diff": {"href": f"{site.api}/repositories/{full}/diff/{number}"}},
            "summary": {"type": "rendered", "raw": f"Seeded pull request {number}.",
                        "markup": "markdown", "html": f"<p>Seeded pull request {number}.</p>"}}
    if participants is not None:
        body["participants"] = [participant_json(p, site) for p in participants]
        body["reviewers"] = [account_json(p["user"], site) for p in participants
                             if p["role"] == "REVIEWER"]
    return body


def comment_json(comment: Item, repo: Item, site: Site) -> dict[str, Any]:
    full, kind = repo["full_name"], comment["kind"]
    path = "pullrequests" if kind == "pr" else "issues"
    base = f"{site.api}/repositories/{full}/{path}/{comment['thread']}/comments/{comment['id']}"
    web = (f"/{full}/pull-requests/{comment['thread']}/_/diff#comment-{comment['id']}"
           if kind == "pr" else f"/{full}/issues/{comment['thread']}#comment-{comment['id']}")
    body = {"type": "pullrequest_comment" if kind == "pr" else "issue_comment",
            "id": comment["id"], "created_on": when(comment["created"]),
            "updated_on": when(comment["updated"]), "deleted": False,
            "content": {"type": "rendered", "raw": comment["text"], "markup": "markdown",
                        "html": f"<p>{comment['text']}</p>"},
            "user": account_json(comment["user"], site),
            "links": {"self": {"href": base}, "html": site.link(web)}}
    if comment.get("inline"):
        body["inline"] = dict(comment["inline"])
    return body


def issue_json(item: Item, site: Site) -> dict[str, Any]:
    repo = item["repo"].repo
    full, number = repo["full_name"], item["id"]
    base = f"{site.api}/repositories/{full}/issues/{number}"
    return {"type": "issue", "id": number, "repository": repo_ref(repo, site),
            "title": item["title"], "state": item["state"], "kind": "bug", "priority": "major",
            "reporter": account_json(item["author"], site),
            "assignee": account_json(item["assignee"], site),
            "created_on": when(item["created"]), "updated_on": when(item["updated"]),
            "edited_on": None, "votes": 0, "watches": 1, "milestone": None, "version": None,
            "component": None,
            "content": {"type": "rendered", "raw": f"Seeded issue {number}.",
                        "markup": "markdown", "html": f"<p>Seeded issue {number}.</p>"},
            "links": {"self": {"href": base}, "html": site.link(f"/{full}/issues/{number}"),
                      "comments": {"href": f"{base}/comments"}}}
