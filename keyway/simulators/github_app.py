"""GitHub App installations in the GitHub simulator (``sim.apps``), in GitHub's shapes (2025).

Knobs: :meth:`~GitHubApps.register_app`, :meth:`~GitHubApps.add_installation`,
:meth:`~GitHubApps.remove_installation` (404), :meth:`~GitHubApps.suspend_installation` (403;
both revoke the installation's tokens) and :attr:`~GitHubApps.overgrant` (True: grant all plus
``contents: read``; or a mapping of extra permissions). Endpoints under ``/api/v3``: ``POST
/app/installations/<id>/access_tokens`` and ``GET /app/installations/<id>`` (app JWT, see
:meth:`~GitHubApps._time_problem`; permissions beyond the grant → 422; 201 with a ``ghs_``
token for 1 h) and ``DELETE /installation/token``. An installation token authenticates the
other endpoints as ``<slug>[bot]`` (one rate-limit budget per installation; what it may call:
:mod:`.github_tokens`); app endpoints are not metered. ``/user/installations``,
``/installation/repositories`` and the install page: :mod:`.github_installation`.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from werkzeug.wrappers import Request, Response

from keyway.simulators.github_api import (
    API,
    COMMON_HEADERS,
    DOCS,
    GitHubData,
    account_urls,
    node_id,
)
from keyway.simulators.github_oauth import github_policy, random_base62
from keyway.simulators.github_tokens import BOT_CLIENT
from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import Account, OAuthError, TokenInfo
from keyway.simulators.server import Route
from keyway.simulators.wire import bearer_token, json_response

TOKEN_TTL = 3600  # installation tokens live one hour
MAX_JWT_AHEAD = 600  # exp at most 10 minutes into the future
DRIFT = 60  # iat leeway and the back-dating GitHub recommends
LEVELS = {"read": 1, "write": 2, "admin": 3}
BAD_JWT = "A JSON web token could not be decoded"
CREATED = "2020-01-01T00:00:00Z"


@dataclass(frozen=True)
class App:
    """A registered GitHub App (public half of its key only)."""

    app_id: str
    public_key: Any
    permissions: Mapping[str, str]
    slug: str
    client_id: str | None = None


@dataclass
class Installation:
    """One installation of an app on an account."""

    id: int
    app: App
    account: dict[str, Any]
    permissions: dict[str, str]
    users: frozenset[int]
    bot: Account
    repository_selection: str = "all"
    suspended: bool = False
    tokens: list[str] = field(default_factory=list)
    repositories: frozenset[str] = frozenset()  # lower-cased full names, when "selected"

    def covers(self, repo: Mapping[str, Any]) -> bool:
        """Whether ``repo`` (private ones too) is one of this installation's repositories."""
        owner = str(repo.get("owner", {}).get("login", "")).lower()
        return owner == str(self.account["login"]).lower() and (
            self.repository_selection == "all" or
            str(repo.get("full_name", "")).lower() in self.repositories)


def _error(status: int, message: str) -> Response:
    return json_response({"message": message, "documentation_url": DOCS,
                          "status": str(status)}, status)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _within(requested: Mapping[str, Any], granted: Mapping[str, str]) -> bool:
    return all(isinstance(level, str) and LEVELS.get(level, 99) <= LEVELS.get(
        granted.get(name, ""), 0) for name, level in requested.items())


class GitHubApps:
    """Apps, installations and installation tokens; thread-safe. Attach to the simulator's
    OAuth authority (token bookkeeping, clock, ``on_issue``) before serving."""

    def __init__(self, data: GitHubData) -> None:
        self.data = data
        self.apps: dict[str, App] = {}
        self.installations: dict[int, Installation] = {}
        self.overgrant: bool | Mapping[str, str] = False
        self._authority: OAuthAuthority | None = None
        self._lock = threading.RLock()
        data.installation_of = self.installation_of

    def attach(self, authority: OAuthAuthority) -> None:
        """Share the simulator's token bookkeeping, clock and ``on_issue``."""
        self._authority = authority

    @property
    def authority(self) -> OAuthAuthority:
        if self._authority is None:
            raise RuntimeError("GitHubApps is not attached to a simulator")
        return self._authority

    # ---- knobs --------------------------------------------------------------------------------
    def register_app(self, app_id: str, public_key_pem: bytes,
                     permissions: Mapping[str, str] | None = None, *, slug: str | None = None,
                     client_id: str | None = None, client_secret: str | None = None,
                     redirect_uris: Iterable[str] = ()) -> App:
        """Register an app by id with the public key that verifies its JWTs. ``client_id``,
        ``client_secret``, ``redirect_uris``: the app's own OAuth client (GitHub gives every
        App one, distinct from any OAuth App), registered here; the install page's redirect
        brings a code for it (:mod:`.github_installation`), which the token endpoint refuses
        to every other client (``bad_verification_code``). A client id some other client
        already has is refused (ValueError): an App never shares its client."""
        key = serialization.load_pem_public_key(public_key_pem)
        app = App(str(app_id), key, dict(permissions or {"metadata": "read"}),
                  slug or f"keyway-app-{app_id}".lower(), client_id)
        with self._lock:
            if client_id is not None:
                if not client_secret or client_id in self.authority.clients:
                    raise ValueError("a GitHub App's OAuth client needs its own id and a secret")
                self.authority.register_client(client_id, client_secret, list(redirect_uris))
                # an App's client issues user-to-server tokens (ghu_, expiring, ghr_ refresh)
                self.authority.client_policies[client_id] = github_policy(True)
            self.apps[app.app_id] = app
        return app

    def add_installation(self, installation_id: int, account_login: str,
                         granted_permissions: Mapping[str, str] | None = None,
                         users: Iterable[int] = (), *, app_id: str | None = None,
                         repositories: Iterable[str] | None = None) -> Installation:
        """Install an app (default: the last registered) on ``account_login``; ``users`` are
        the user ids who may access it. Granted permissions default to the app's. With
        ``repositories`` (full names) the installation covers only those ("selected"),
        otherwise every repository of the account ("all"), private ones included."""
        with self._lock:
            if not self.apps:
                raise ValueError("register an app first")
            app = self.apps[str(app_id)] if app_id is not None else list(self.apps.values())[-1]
            ident = int(installation_id)
            bot = Account(f"{app.slug}[bot]", 41_000_000 + ident, f"{app.slug}[bot]")
            installation = Installation(
                ident, app, self._account(account_login),
                dict(granted_permissions or app.permissions), frozenset(users), bot,
                "all" if repositories is None else "selected",
                repositories=frozenset(r.lower() for r in repositories or ()))
            self.installations[ident] = installation
            return installation

    def installation_of(self, info: TokenInfo) -> Installation | None:
        """The installation an installation token was minted for (by its bot account)."""
        with self._lock:
            return next((i for i in self.installations.values()
                         if i.bot.id == info.account.id and not i.suspended), None)

    def remove_installation(self, installation_id: int) -> bool:
        """Uninstall: minting answers 404 and every token issued for it is revoked."""
        return self._end(installation_id, remove=True)

    def suspend_installation(self, installation_id: int) -> bool:
        """Suspend: minting answers 403 and every token issued for it is revoked."""
        return self._end(installation_id, remove=False)

    def _end(self, installation_id: int, *, remove: bool) -> bool:
        with self._lock:
            found = self.installations.get(int(installation_id))
            if found is not None:
                found.suspended = True
                if remove:
                    del self.installations[found.id]
            for token in found.tokens if found else ():
                self.authority.revoke(token)
        return found is not None

    def _account(self, login: str) -> dict[str, Any]:
        org = self.data.orgs.get(login.lower())
        ident = org["id"] if org else 7_000_000 + zlib.crc32(login.lower().encode()) % 10**6
        return {"login": login, "id": ident, "type": "Organization", "site_admin": False}

    # ---- routes -------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        """The app endpoints, for the simulator's routing table."""
        return [
            Route(f"{API}/app/installations/<int:installation_id>/access_tokens", ("POST",),
                  self.access_tokens),
            Route(f"{API}/app/installations/<int:installation_id>", ("GET",),
                  self.get_installation),
            Route(f"{API}/installation/token", ("DELETE",), self.revoke_token),
        ]

    def access_tokens(self, request: Request, installation_id: int) -> Response:
        """Create an installation access token, narrowed to the requested permissions."""
        found = self._authorized_installation(request, installation_id)
        if isinstance(found, Response):
            return found
        body = request.get_json(force=True, silent=True) if request.get_data() else {}
        asked = body.get("permissions") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(asked, dict | None):
            return _error(400, "Problems parsing JSON")
        requested = dict(asked or found.permissions)
        if not _within(requested, found.permissions):
            return _error(422, "The permissions requested are not granted to this installation.")
        granted = self._granted(found, requested)
        token, expires = self._issue(found, granted)
        narrowed = "repositories" in body or "repository_ids" in body
        return json_response({
            "token": token, "expires_at": _iso(expires), "permissions": granted,
            "repository_selection": "selected" if narrowed else found.repository_selection,
        }, 201, dict(COMMON_HEADERS))

    def get_installation(self, request: Request, installation_id: int) -> Response:
        """The installation, to its own app."""
        found = self._authorized_installation(request, installation_id, suspended_ok=True)
        if isinstance(found, Response):
            return found
        return json_response(self.installation_json(found, request.host_url), 200,
                             dict(COMMON_HEADERS))

    def _token_info(self, request: Request) -> TokenInfo | None:
        try:
            return self.authority.authenticate(bearer_token(request, ("bearer", "token")))
        except OAuthError:
            return None

    def revoke_token(self, request: Request) -> Response:
        """An installation token revokes itself."""
        info = self._token_info(request)
        if info is None or not info.client_id.startswith(BOT_CLIENT):
            return _error(401, "Bad credentials")
        self.authority.revoke(bearer_token(request, ("bearer", "token")) or "")
        return Response(status=204)

    # ---- helpers ------------------------------------------------------------------------------
    def authorized_app(self, request: Request) -> App | Response:
        """The app whose JWT authenticates ``request`` (GitHub's time rules), else the error
        answer (the app-webhook endpoints, :mod:`.github_deliveries`, use it)."""
        assertion = bearer_token(request, ("bearer",))
        if assertion is None:
            return _error(401, "Requires authentication")
        try:
            app, claims = self._verify(assertion)
        except jwt.PyJWTError:
            return _error(401, BAD_JWT)
        problem = self._time_problem(claims)
        return _error(401, problem) if problem is not None else app

    def _authorized_installation(self, request: Request, installation_id: int, *,
                                 suspended_ok: bool = False) -> Installation | Response:
        """The app's installation after checking the app JWT; else the error answer."""
        app = self.authorized_app(request)
        if isinstance(app, Response):
            return app
        with self._lock:
            found = self.installations.get(installation_id)
        if found is None or found.app.app_id != app.app_id:
            return _error(404, "Not Found")
        if found.suspended and not suspended_ok:
            return _error(403, "This installation has been suspended")
        return found

    def _verify(self, assertion: str) -> tuple[App, dict[str, Any]]:
        """The app named by ``iss`` and the claims, verified with that app's public key."""
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        with self._lock:
            app = self.apps.get(str(unverified.get("iss")))
        if app is None:
            raise jwt.InvalidIssuerError("unknown app")
        claims = jwt.decode(assertion, app.public_key, algorithms=["RS256"], options={
            "require": ["iat", "exp", "iss"], "verify_exp": False, "verify_iat": False,
            "verify_nbf": False})
        return app, claims

    def _time_problem(self, claims: dict[str, Any]) -> str | None:
        """GitHub's rules: ``iat`` not in the future (60 s leeway); ``exp`` in the future, at
        most 10 min ahead and at most 10 min + the recommended 60 s back-dating after ``iat``."""
        iat, exp, now = claims.get("iat"), claims.get("exp"), self.authority.clock()
        if not isinstance(iat, int) or iat > now + DRIFT:
            return ("'Issued at' claim ('iat') must be an Integer representing the time that "
                    "the assertion was issued")
        if not isinstance(exp, int) or exp <= now:
            return ("'Expiration time' claim ('exp') must be a numeric value representing the "
                    "future time at which the assertion expires")
        if exp > now + MAX_JWT_AHEAD or exp - iat > MAX_JWT_AHEAD + DRIFT:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _granted(self, installation: Installation, requested: dict[str, str]) -> dict[str, str]:
        if not self.overgrant:
            return requested
        extra = {"contents": "read"} if self.overgrant is True else dict(self.overgrant)
        return {**requested, **installation.permissions, **extra}

    def _issue(self, installation: Installation,
               permissions: dict[str, str]) -> tuple[str, float]:
        now, token = self.authority.clock(), "ghs_" + random_base62(36)
        scopes = tuple(f"{k}:{v}" for k, v in sorted(permissions.items()))
        self.authority.on_issue(token)
        self.authority.access_tokens[token] = TokenInfo(
            BOT_CLIENT + installation.app.app_id, installation.bot, scopes, now, now + TOKEN_TTL)
        with self._lock:
            installation.tokens.append(token)
        return token, now + TOKEN_TTL

    def installation_json(self, installation: Installation, host: str) -> dict[str, Any]:
        account, api = installation.account, f"{host}api/v3"
        app_id = installation.app.app_id
        return {
            "id": installation.id, "account": {
                **account, "node_id": node_id("012", "Organization", account["id"]),
                **account_urls(account["login"], host)},
            "app_id": int(app_id) if app_id.isdigit() else app_id,
            "app_slug": installation.app.slug,
            "target_id": account["id"], "target_type": account["type"],
            "permissions": dict(installation.permissions), "events": [],
            "repository_selection": installation.repository_selection,
            "access_tokens_url": f"{api}/app/installations/{installation.id}/access_tokens",
            "repositories_url": f"{api}/installation/repositories",
            "html_url": f"{host}organizations/{account['login']}/settings/installations/"
                        f"{installation.id}",
            "single_file_name": None, "has_multiple_single_files": False,
            "single_file_paths": [], "created_at": CREATED, "updated_at": CREATED,
            "suspended_at": CREATED if installation.suspended else None,
            "suspended_by": None,
        }
