"""Atlassian's OAuth 2.0 (3LO) authorization server as auth.atlassian.com answers it, with
rotating refresh tokens in revocable families.

* ``GET /authorize?audience=api.atlassian.com&client_id&scope&redirect_uri&state
  &response_type=code&prompt=consent`` - auto-approves as the signed-in user; 302 to the
  exactly registered ``redirect_uri`` with ``code`` and ``state``. Without
  ``audience=api.atlassian.com``, an unknown client or an unregistered redirect URI: a 400 page
  and no redirect.
* ``POST /oauth/token`` (JSON, as Atlassian documents, or a form): ``authorization_code`` and
  ``refresh_token``. Success: ``{"access_token", "expires_in": 3600, "token_type": "Bearer",
  "refresh_token", "scope"}`` (a refresh token only when ``offline_access`` was granted).
  Errors: ``{"error", "error_description"}``, 403 for ``invalid_grant`` (what Atlassian sends
  for an unknown or invalidated refresh token), 401 ``access_denied`` for a bad client.

Rotating refresh tokens (:class:`RotatingAuthority`): every refresh returns a new refresh
token and invalidates the one used. The tokens descending from one authorization form a
*family*. Presenting an invalidated refresh token again within :attr:`reuse_leeway` seconds
(Atlassian: 10 minutes) is tolerated and answered with a new pair, but counted in
:attr:`reuses`; beyond it the whole family is revoked (every refresh token and access token of
it), counted in :attr:`family_revocations`, and answered ``invalid_grant``. Access tokens
stay valid until they expire (1 hour).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import Account, Issued, OAuthError, TokenPolicy
from keyway.simulators.server import Route
from keyway.simulators.wire import authorize_endpoint, json_response, request_params

ACCESS_TTL = 3600
REUSE_LEEWAY = 600.0  # seconds: Atlassian's documented leeway interval
AUDIENCE = "api.atlassian.com"
ERRORS = {"invalid_client": (401, "access_denied", "Unauthorized"),
          "invalid_grant": (403, "invalid_grant", "Unknown or invalid refresh token."),
          "redirect_uri_mismatch": (403, "invalid_grant", "Invalid authorization code"),
          "unsupported_grant_type": (400, "unsupported_grant_type", "Unsupported grant type"),
          "invalid_request": (400, "invalid_request", "Missing required parameter")}


def atlassian_policy() -> TokenPolicy:
    """Opaque tokens (Atlassian's are JWT-like but opaque to clients), 1-hour access tokens."""
    return TokenPolicy(access_token=lambda: "atl_" + secrets.token_urlsafe(48),
                       code=lambda: secrets.token_urlsafe(24),
                       refresh_token=lambda: "atr_" + secrets.token_urlsafe(48),
                       access_ttl=ACCESS_TTL, redirect_uri_required=True,
                       response_type_required=True)


@dataclass
class Family:
    """The refresh tokens descending from one authorization."""

    tokens: list[str] = field(default_factory=list)  # refresh and access tokens issued
    revoked: bool = False


@dataclass(frozen=True)
class Reuse:
    """An invalidated refresh token presented again ``age`` seconds after it was used."""

    age: float
    revoked_family: bool


class RotatingAuthority(OAuthAuthority):
    """:class:`OAuthAuthority` with Atlassian's rotating refresh tokens (module docstring)."""

    def __init__(self, policy: TokenPolicy, account: Account, *, clock: Callable[[], float],
                 on_issue: Callable[[str], object] | None = None) -> None:
        super().__init__(policy, account, clock=clock, on_issue=on_issue)
        self.reuse_leeway = REUSE_LEEWAY
        self.refresh_calls = 0
        self.reuses: list[Reuse] = []
        self.family_revocations = 0
        self._family_of: dict[str, Family] = {}  # refresh token -> its family
        self._used_at: dict[str, float] = {}  # invalidated refresh token -> when
        self._current: Family | None = None  # the family _issue adds to

    def exchange_code(self, client_id: str, client_secret: str, code: str,
                      redirect_uri: str | None, verifier: str | None) -> Issued:
        with self._lock:
            self._current = Family()
            try:
                return super().exchange_code(client_id, client_secret, code, redirect_uri,
                                             verifier)
            finally:
                self._current = None

    def mint(self, client_id: str = "simulator", account: Account | None = None,
             scopes: tuple[str, ...] = ()) -> Issued:
        with self._lock:
            self._current = Family()
            try:
                return super().mint(client_id, account, scopes)
            finally:
                self._current = None

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> Issued:
        with self._lock:
            self.check_client(client_id, client_secret)
            self.refresh_calls += 1
            family = self._family_of.get(refresh_token or "")
            entry = self.refresh_tokens.get(refresh_token or "")
            if family is None or family.revoked or entry is None \
                    or entry.client_id != client_id:
                raise OAuthError("invalid_grant", "Unknown or invalid refresh token.")
            used = self._used_at.get(refresh_token)
            if used is not None:
                age = self.clock() - used
                if age > self.reuse_leeway:
                    self._revoke_family(family)
                    self.reuses.append(Reuse(age, True))
                    raise OAuthError("invalid_grant", "Unknown or invalid refresh token.")
                self.reuses.append(Reuse(age, False))
            else:
                self._used_at[refresh_token] = self.clock()
            self._current = family
            try:
                return self._issue(client_id, entry.account, entry.scopes)
            finally:
                self._current = None

    def _issue(self, client_id: str, account: Account, scopes: tuple[str, ...]) -> Issued:
        offline = "offline_access" in scopes
        issued = super()._issue(client_id, account, scopes)
        family = self._current if self._current is not None else Family()
        family.tokens.append(issued.access_token)
        if issued.refresh_token is not None:
            if offline:
                family.tokens.append(issued.refresh_token)
                self._family_of[issued.refresh_token] = family
            else:  # no offline_access: Atlassian grants no refresh token
                self.refresh_tokens.pop(issued.refresh_token, None)
                issued = Issued(issued.access_token, issued.info, None)
        return issued

    def _revoke_family(self, family: Family) -> None:
        family.revoked = True
        self.family_revocations += 1
        for token in family.tokens:
            self.revoked.add(token)
            self.refresh_tokens.pop(token, None)

    def family_revoked(self, refresh_token: str) -> bool:
        """Whether the family of ``refresh_token`` has been revoked (a test's probe)."""
        with self._lock:
            family = self._family_of.get(refresh_token)
            return family is not None and family.revoked


def oauth_error(error: OAuthError) -> Response:
    status, name, description = ERRORS.get(error.error, ERRORS["invalid_request"])
    return json_response({"error": name, "error_description": description}, status,
                         {"Cache-Control": "no-store"})


class AtlassianOAuth:
    """The authorize and token endpoints of auth.atlassian.com."""

    def __init__(self, authority: RotatingAuthority) -> None:
        self.authority = authority

    def routes(self) -> list[Route]:
        return [Route("/authorize", ("GET",), self.authorize),
                Route("/oauth/token", ("POST",), self.token)]

    def authorize(self, request: Request) -> Response:
        if request.args.get("audience") != AUDIENCE:
            page = "<html><body><h1>Invalid audience</h1></body></html>"
            return Response(page, status=400, content_type="text/html; charset=utf-8")
        return authorize_endpoint(self.authority, request)

    def token(self, request: Request) -> Response:
        params = request_params(request)
        client = (params.get("client_id", ""), params.get("client_secret", ""))
        try:
            issued = self.authority.grant(*client, params)
        except OAuthError as e:
            return oauth_error(e)
        body = {"access_token": issued.access_token, "expires_in": ACCESS_TTL,
                "token_type": "Bearer", "scope": " ".join(issued.info.scopes)}
        if issued.refresh_token is not None:
            body["refresh_token"] = issued.refresh_token
        return json_response(body, headers={"Cache-Control": "no-store"})
