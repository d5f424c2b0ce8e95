"""What a GitHub App installation looks like from outside the app's own endpoints:

* ``GET /installation/repositories`` (REST API 2022-11-28, "List repositories accessible to
  the app installation") - installation tokens only (any other token: 403 ``Resource not
  accessible by integration``). Answer
  ``{"total_count", "repository_selection": "all"|"selected", "repositories": [...]}``, paged
  with ``per_page`` / ``page`` and a ``Link`` header, metered like every REST call.
* ``GET /user/installations`` - the installations the token's user may access (user tokens).
* ``GET /apps/<slug>/installations/new?state=…`` - the install page. GitHub lets the signed-in
  user pick an account, installs, then (the app asks for user authorization during
  installation) redirects to the app's callback URL with ``code``, ``installation_id``,
  ``setup_action=install`` and the ``state`` it was given. The simulator auto-approves: the
  installation is the app's most recent one whose users include the signed-in user (add it
  beforehand with :meth:`~.github_app.GitHubApps.add_installation`); the code is issued for
  the app's own OAuth client (``register_app(client_id=…, client_secret=…, redirect_uris=…)``,
  never an OAuth App's) to its first registered redirect URI, and only that client can redeem
  it.
  An unknown app or no such installation: 404 page; an app without an OAuth client: 400.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from keyway.simulators.github_api import API, COMMON_HEADERS, GitHubApi, _paginate, repo_json
from keyway.simulators.github_app import GitHubApps
from keyway.simulators.github_tokens import INTEGRATION, error
from keyway.simulators.oauth import with_query
from keyway.simulators.oauth_model import OAuthError, TokenInfo
from keyway.simulators.server import Route

REPOS_DOCS = ("https://docs.github.com/rest/apps/installations"
              "#list-repositories-accessible-to-the-app-installation")


class GitHubInstallationApi(GitHubApi):
    """``/installation/repositories`` and the install page over ``apps``."""

    def __init__(self, apps: GitHubApps, *args: Any) -> None:
        super().__init__(*args)
        self.apps = apps

    def routes(self) -> list[Route]:
        return [Route(f"{API}/installation/repositories", ("GET",), self.repositories),
                Route(f"{API}/user/installations", ("GET",), self.user_installations),
                Route("/apps/<slug>/installations/new", ("GET",), self.install_page)]

    def user_installations(self, request: Request) -> Response:
        """The installations the token's user may access (user tokens only: an installation
        token is refused by the token rules, ``NOT_FOR_INSTALLATIONS``)."""
        def produce(info: TokenInfo) -> tuple[Any, dict[str, str]]:
            mine = sorted((i for i in list(self.apps.installations.values())
                           if info.account.id in i.users), key=lambda i: i.id)
            chunk, link = _paginate(request, mine)
            return ({"total_count": len(mine), "installations": [
                self.apps.installation_json(i, request.host_url) for i in chunk]},
                {**COMMON_HEADERS, **link})
        return self._call(request, produce)

    def repositories(self, request: Request) -> Response:
        def produce(info: TokenInfo) -> tuple[Any, dict[str, str]] | Response:
            installation = self.caller(request).installation
            if installation is None:
                return error(403, INTEGRATION, REPOS_DOCS)
            repos = sorted((r for r in self.data.list() or [] if installation.covers(r)),
                           key=lambda r: r["full_name"].lower())
            chunk, link = _paginate(request, repos)
            return ({"total_count": len(repos),
                     "repository_selection": installation.repository_selection,
                     "repositories": [repo_json(r, request.host_url) for r in chunk]},
                    {**COMMON_HEADERS, **link})
        return self._call(request, produce)

    def install_page(self, request: Request, slug: str) -> Response:
        authority = self.apps.authority
        app = next((a for a in list(self.apps.apps.values()) if a.slug == slug), None)
        mine = [i for i in list(self.apps.installations.values()) if app is not None and
                i.app is app and authority.account.id in i.users and not i.suspended]
        if app is None or not mine:
            return _page(404, "Not Found")
        if app.client_id is None:
            return _page(400, "This GitHub App does not request user authorization.")
        state = request.args.get("state")
        try:
            location = authority.authorize({"client_id": app.client_id,
                                            **({"state": state} if state else {})})
        except OAuthError as e:
            return _page(400, e.description)
        return Response(status=302, headers={"Location": with_query(
            location, installation_id=str(mine[-1].id), setup_action="install")})


def _page(status: int, text: str) -> Response:
    return Response(f"<html><body><h1>{text}</h1></body></html>", status=status,
                    content_type="text/html; charset=utf-8")
