"""GitHub's repository webhooks as the simulator serves them (under ``/api/v3``), metered like
every other endpoint (REST API 2022-11-28, docs.github.com/rest/repos/webhooks):

* ``GET /repos/{owner}/{repo}/hooks`` - the repository's hooks (``config.secret`` shown as
  ``********``, as GitHub does);
* ``POST /repos/{owner}/{repo}/hooks`` - ``{"name": "web", "active", "events", "config":
  {"url", "content_type", "secret", "insecure_ssl"}}`` → 201 with the hook and a
  ``Location``; ``name`` other than ``web`` or a missing ``config.url`` → 422; a hook with the
  same ``config.url`` already on the repository → 422 ``Validation Failed`` / ``Hook already
  exists on this repository``;
* ``DELETE /repos/{owner}/{repo}/hooks/{hook_id}`` → 204; an unknown hook → 404.

Access: the token needs ``admin:repo_hook`` (``write:repo_hook``/``repo`` also do; reading
takes ``read:repo_hook`` too) — otherwise 403 with ``X-Accepted-OAuth-Scopes`` (the rule lives
in :mod:`.github_tokens` with the others; installation tokens need ``repository_hooks``); a
repository
the token's user does not administer (:meth:`GitHubSimulator.deny_admin`) answers 404, because
GitHub hides what a user may not manage. :func:`deliver` sends an event to every
matching hook of a repository, signed ``X-Hub-Signature-256`` with that hook's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import iso
from keyway.simulators.github_api import API, COMMON_HEADERS, DOCS, GitHubData, _error
from keyway.simulators.github_data import GitHubActivity, RepoActivity
from keyway.simulators.github_metadata import Produced, RepoEndpoints
from keyway.simulators.github_render import Site
from keyway.simulators.hooks import Hook, HookStore, send
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import TokenInfo
from keyway.simulators.ratelimit import RateLimiter
from keyway.simulators.server import Route
from keyway.simulators.wire import json_response

HOOK_DOCS = f"{DOCS}/repos/webhooks"


def _validation(message: str, field: str | None = None) -> Response:
    error: dict[str, Any] = {"resource": "Hook", "code": "custom", "message": message}
    if field:
        error.update(field=field, code="invalid")
    return json_response({"message": "Validation Failed", "errors": [error],
                          "documentation_url": f"{HOOK_DOCS}#create-a-repository-webhook",
                          "status": "422"}, 422)


def hook_json(hook: Hook, site: Site) -> dict[str, Any]:
    """A repository hook as GitHub renders it (the secret masked)."""
    url = f"{site.api}/hooks/{hook.id}"
    config = {"content_type": hook.options.get("content_type", "form"),
              "insecure_ssl": hook.options.get("insecure_ssl", "0"), "url": hook.url}
    if hook.secret:
        config["secret"] = "********"  # noqa: S105 - GitHub's mask, not a value
    return {"type": "Repository", "id": hook.id, "name": "web", "active": hook.active,
            "events": list(hook.events), "config": config,
            "updated_at": iso(int(hook.created_at)), "created_at": iso(int(hook.created_at)),
            "url": url, "test_url": f"{url}/test", "ping_url": f"{url}/pings",
            "deliveries_url": f"{url}/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None}}


class GitHubHooksApi(RepoEndpoints):
    """The repository-hook endpoints over ``hooks``."""

    def __init__(self, authority: OAuthAuthority, limiter: RateLimiter, data: GitHubData,
                 activity: GitHubActivity, hooks: HookStore) -> None:
        super().__init__(authority, limiter, data, activity)
        self.hooks = hooks

    def routes(self) -> list[Route]:
        repo = f"{API}/repos/<owner>/<repo>"
        return [Route(f"{repo}/hooks", ("GET", "POST"), self.repo_hooks),
                Route(f"{repo}/hooks/<int:hook_id>", ("DELETE",), self.delete_hook)]

    def _hook_call(self, request: Request, owner: str, repo: str, produce: Any) -> Response:
        """The scopes a hook endpoint needs are checked with every other token rule
        (:data:`.github_tokens.OAUTH_SCOPES`); here only whether the user administers it."""
        def run(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            if act.name.lower() in self.data.admin_denied:
                return _error(404, "Not Found", HOOK_DOCS)
            return produce(act, site, info)
        return self._repo_call(request, owner, repo, run)

    def repo_hooks(self, request: Request, owner: str, repo: str) -> Response:
        if request.method == "POST":
            return self._hook_call(request, owner, repo,
                                   lambda act, site, info: self._create(request, act, site))

        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            found = self.hooks.list(act.name.lower())
            return self._small(request, found, lambda hook: hook_json(hook, site))
        return self._hook_call(request, owner, repo, produce)

    def _create(self, request: Request, act: RepoActivity, site: Site) -> Response:
        payload = request.get_json(force=True, silent=True)
        payload = payload if isinstance(payload, dict) else {}
        config = payload.get("config")
        if payload.get("name", "web") != "web":
            return _validation("Name must be 'web' for repository hooks", "name")
        url = config.get("url") if isinstance(config, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _validation("url is not a valid URL", "url")
        target = act.name.lower()
        if self.hooks.find_url(target, url) is not None:
            return _validation("Hook already exists on this repository")
        events = payload.get("events") or ["push"]
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return _validation("events must be a list of event names", "events")
        hook = self.hooks.add(target, url, str(config.get("secret") or ""), tuple(events),
                              self.limiter.clock(), content_type=config.get("content_type",
                                                                            "form"),
                              insecure_ssl=str(config.get("insecure_ssl", "0")))
        hook.active = payload.get("active", True) is not False
        body = hook_json(hook, site)
        return json_response(body, 201, {**COMMON_HEADERS, "Location": body["url"]})

    def delete_hook(self, request: Request, owner: str, repo: str, hook_id: int) -> Response:
        def produce(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            if not self.hooks.remove(act.name.lower(), hook_id):
                return _error(404, "Not Found", f"{HOOK_DOCS}#delete-a-repository-webhook")
            return Response(status=204, headers=COMMON_HEADERS)
        return self._hook_call(request, owner, repo, produce)



def deliver(hooks: HookStore, full_name: str, event: str,
            payload: dict[str, Any]) -> list[requests.Response]:
    """Send ``event`` to every active hook on ``full_name`` subscribed to it (or to ``*``),
    JSON-encoded and signed with that hook's secret; returns the answers."""
    body = json.dumps(payload).encode()
    answers = []
    for hook in hooks.list(full_name.lower()):
        if not hook.active or not ({event, "*"} & set(hook.events)):
            continue
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-GitHub-Hook-ID": str(hook.id), "User-Agent": "GitHub-Hookshot/sim",
                   "X-GitHub-Hook-Installation-Target-Type": "repository"}
        if hook.secret:
            digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        answers.append(send(hook, body, headers))
    return answers
