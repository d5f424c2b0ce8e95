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
GitHub hides what a user may not manage. :meth:`.GitHubDeliveries.deliver_repo` sends an
event to every matching hook of a repository, signed ``X-Hub-Signature-256`` with that
hook's secret, through the delivery log (:mod:`.github_deliveries`:
``…/hooks/{hook_id}/deliveries``,
``…/{delivery_id}`` and ``…/attempts``).
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.activity import iso
from keyway.simulators.github_api import API, COMMON_HEADERS, DOCS, GitHubData, _error
from keyway.simulators.github_data import GitHubActivity, RepoActivity
from keyway.simulators.github_deliveries import GitHubDeliveries, detail_json
from keyway.simulators.github_metadata import Produced, RepoEndpoints
from keyway.simulators.github_render import Site
from keyway.simulators.hooks import Hook, HookStore
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
                 activity: GitHubActivity, hooks: HookStore,
                 deliveries: GitHubDeliveries | None = None) -> None:
        super().__init__(authority, limiter, data, activity)
        self.hooks, self.deliveries = hooks, deliveries

    def routes(self) -> list[Route]:
        repo = f"{API}/repos/<owner>/<repo>"
        hook = f"{repo}/hooks/<int:hook_id>"
        return [Route(f"{repo}/hooks", ("GET", "POST"), self.repo_hooks),
                Route(hook, ("DELETE",), self.delete_hook),
                Route(f"{hook}/deliveries", ("GET",), self.hook_deliveries),
                Route(f"{hook}/deliveries/<int:delivery_id>", ("GET",), self.hook_delivery),
                Route(f"{hook}/deliveries/<int:delivery_id>/attempts", ("POST",),
                      self.hook_redeliver)]

    # ---- the hook's delivery log (github_deliveries) ------------------------------------------
    def _of_hook(self, request: Request, owner: str, repo: str, hook_id: int,
                 produce: Any) -> Response:
        def run(act: RepoActivity, site: Site, info: TokenInfo) -> Produced:
            if self.deliveries is None or not any(
                    h.id == hook_id for h in self.hooks.list(act.name.lower())):
                return _error(404, "Not Found", f"{HOOK_DOCS}#list-deliveries-for-a-repository"
                                                "-webhook")
            return produce(str(hook_id))
        return self._hook_call(request, owner, repo, run)

    def hook_deliveries(self, request: Request, owner: str, repo: str, hook_id: int) -> Response:
        return self._of_hook(request, owner, repo, hook_id,
                             lambda hook: self.deliveries.listing(request, hook))

    def hook_delivery(self, request: Request, owner: str, repo: str, hook_id: int,
                      delivery_id: int) -> Response:
        def produce(hook: str) -> Produced:
            found = self.deliveries.find(hook, delivery_id)
            if found is None:
                return _error(404, "Not Found", f"{HOOK_DOCS}#get-a-delivery-for-a-repository-"
                                                "webhook")
            return detail_json(found, self.deliveries.omit_payloads), dict(COMMON_HEADERS)
        return self._of_hook(request, owner, repo, hook_id, produce)

    def hook_redeliver(self, request: Request, owner: str, repo: str, hook_id: int,
                       delivery_id: int) -> Response:
        def produce(hook: str) -> Produced:
            found = self.deliveries.find(hook, delivery_id)
            if found is None:
                return _error(404, "Not Found", f"{HOOK_DOCS}#redeliver-a-delivery-for-a-"
                                                "repository-webhook")
            self.deliveries.redeliver(found)
            return json_response({}, 202, dict(COMMON_HEADERS))
        return self._of_hook(request, owner, repo, hook_id, produce)

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
