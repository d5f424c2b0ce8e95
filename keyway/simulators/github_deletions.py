"""The webhook GitHub sends when an item is deleted, rendered before the simulator removes it
(:meth:`keyway.simulators.GitHubSimulator.delete` delivers it to the repository's hooks).

Shapes, from GitHub's "Webhook events and payloads" page
(https://docs.github.com/en/webhooks/webhook-events-and-payloads): ``issues`` with ``action:
deleted`` carries the ``issue``; ``issue_comment`` ``deleted`` the ``comment`` and its
``issue``; ``label`` ``deleted`` the ``label``; ``pull_request_review_comment`` ``deleted`` the
``comment`` and its ``pull_request``; each also the ``repository`` and the ``sender``. A pull
request cannot be deleted on GitHub and a submitted review neither, so neither sends anything.
A repository transferred to another owner sends ``repository`` with ``action: transferred``
(same page), the repository after the move and ``changes.owner.from`` the owner it left.

Every ``repository`` is the list shape (:func:`.github_render.repo_view`), as the webhook
schemas in GitHub's published description (``x-webhooks`` of ``@octokit/openapi``) have it;
the full ``GET /repos/{owner}/{repo}`` shape's ``temp_clone_token: null`` breaks them. An
organization the repository left is GitHub's "organization simple" (its ``url``, ``repos_url``,
``members_url``… and ``description``), a user its "simple user".
"""

from __future__ import annotations

from typing import Any

from keyway.simulators.github_api import account_urls, node_id
from keyway.simulators.github_render import (
    Site,
    comment_json,
    issue_json,
    label_json,
    pull_json,
    repo_view,
    review_comment_json,
    user_json,
)

EVENTS = {"issue": "issues", "comment": "issue_comment", "label": "label",
          "review_comment": "pull_request_review_comment"}


def deletion_event(activity: Any, kind: str, ident: int,
                   host: str) -> tuple[str, str, dict[str, Any]] | None:
    """``(full name, event, payload)`` of deleting ``kind`` item ``ident``; ``None`` when
    GitHub sends nothing for it or the item is unknown. Call with the activity's lock held."""
    act = activity._where.get(kind, {}).get(ident)  # noqa: SLF001 - the store's own index
    if kind not in EVENTS or act is None:
        return None
    site = Site(host, act.repo)
    sender = user_json(activity.users[0], host) if activity.users else None
    body: dict[str, Any] = {"action": "deleted", "sender": sender,
                            "repository": repo_view(act.repo, host, act.threads.count("open"))}
    if kind == "label":
        label = next((item for item in act.labels if item["id"] == ident), None)
        if label is None:
            return None
        body["label"] = label_json(label, site)
    elif kind == "issue":
        body["issue"] = issue_json(act.threads.items[ident], site)
    elif kind == "comment":
        item = act.comments.items[ident]
        body.update(comment=comment_json(item, site),
                    issue=issue_json(act.by_number[item["number"]], site))
    else:
        item = act.review_comments.items[ident]
        thread = act.by_number[item["number"]]
        body.update(comment=review_comment_json(item, site),
                    pull_request=pull_json(thread, site, body["repository"]))
    return act.repo["full_name"], EVENTS[kind], body


def transfer_event(activity: Any, full_name: str, new_owner: dict[str, Any],
                   host: str) -> tuple[str, str, dict[str, Any]] | None:
    """``(full name, event, payload)`` of transferring ``full_name`` to ``new_owner``:
    ``repository`` with ``action: transferred``, the repository as it is after the move and
    ``changes.owner.from`` the owner it left (an ``organization`` or a ``user``); ``None`` for
    an unknown repository."""
    owner, _, name = full_name.partition("/")
    act = activity.find(owner, name)
    if act is None:
        return None
    old = act.repo["owner"]
    moved = {**act.repo, "owner": new_owner, "full_name": f"{new_owner['login']}/{name}"}
    sender = user_json(activity.users[0], host) if activity.users else None
    side, left = (("organization", organization_json(old, host))
                  if old.get("type") == "Organization" else ("user", account_json(old, host)))
    body = {"action": "transferred", "sender": sender,
            "changes": {"owner": {"from": {side: left}}},
            "repository": repo_view(moved, host, act.threads.count("open"))}
    return act.repo["full_name"], "repository", body


def organization_json(org: dict[str, Any], host: str) -> dict[str, Any]:
    """GitHub's "organization simple" of ``org`` (``host`` ends with ``/``)."""
    login, ident = org["login"], org["id"]
    api = f"{host}api/v3/orgs/{login}"
    return {"login": login, "id": ident,
            "node_id": org.get("node_id") or node_id("012", "Organization", ident),
            "url": api, "repos_url": f"{api}/repos", "events_url": f"{api}/events",
            "hooks_url": f"{api}/hooks", "issues_url": f"{api}/issues",
            "members_url": f"{api}/members{{/member}}",
            "public_members_url": f"{api}/public_members{{/member}}",
            "avatar_url": f"{host}avatars/{login}", "description": org.get("description")}


def account_json(account: dict[str, Any], host: str) -> dict[str, Any]:
    """A user account as a "simple user" (its ``node_id`` and URLs filled in)."""
    return {"node_id": node_id("04", "User", account["id"]), "type": "User",
            "site_admin": False, **account, **account_urls(account["login"], host)}
