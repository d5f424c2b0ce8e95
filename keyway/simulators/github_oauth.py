"""GitHub's OAuth web flow as github.com answers it (documented shapes, 2025).

* ``GET /login/oauth/authorize`` - auto-approves as the signed-in user and redirects (302) to
  the exactly registered ``redirect_uri`` with ``code`` (20 hex characters) and ``state``. An
  unknown client or unregistered redirect URI gets a 400 page and no redirect (github.com
  itself shows an error page or redirects to the *registered* callback with
  ``error=redirect_uri_mismatch``; it never redirects to the unregistered URI either).
* ``POST /login/oauth/access_token`` - parameters from the query string, a form or a JSON body
  (client_secret_post; HTTP Basic also accepted). The answer is
  ``application/x-www-form-urlencoded`` unless ``Accept`` names ``application/json``, and
  errors (``incorrect_client_credentials``, ``redirect_uri_mismatch``,
  ``bad_verification_code``, ``bad_refresh_token``, ``unsupported_grant_type``) come with
  HTTP 200. A wrong PKCE verifier reads ``bad_verification_code`` here (GitHub does not
  document its wording).
* Token kinds: GitHub App user-to-server tokens (``expiring``): ``ghu_`` + 36 characters,
  8-hour ``expires_in`` 28800, ``ghr_`` + 76-character refresh token with
  ``refresh_token_expires_in`` 15897600 (6 months), single use and rotating, ``scope`` empty
  (an app's permissions are not scopes). OAuth App tokens: ``gho_`` + 36, no expiry, no refresh
  token, ``scope`` the comma-separated granted scopes.
* ``DELETE /api/v3/applications/<client_id>/grant`` (every token of that user for the app) and
  ``.../token`` (that token): HTTP Basic ``client_id:client_secret``, JSON
  ``{"access_token": ...}`` → 204.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenPolicy
from keyway.simulators.server import Route
from keyway.simulators.wire import authorize_endpoint, json_response, request_params

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
APP_ACCESS_TTL = 28_800  # 8 hours
APP_REFRESH_TTL = 15_897_600  # 184 days
TROUBLESHOOTING = ("https://docs.github.com/apps/managing-oauth-apps/"
                   "troubleshooting-oauth-app-access-token-request-errors/")
# provider-neutral error -> (GitHub error, description, anchor on the troubleshooting page)
ERRORS = {
    "invalid_client": ("incorrect_client_credentials",
                       "The client_id and/or client_secret passed are incorrect.",
                       "#incorrect-client-credentials"),
    "redirect_uri_mismatch": ("redirect_uri_mismatch", "The redirect_uri MUST match the "
                              "registered callback URL for this application.",
                              "#redirect-uri-mismatch2"),
    "unsupported_grant_type": ("unsupported_grant_type", "The grant type is not supported.",
                               ""),
    "code": ("bad_verification_code", "The code passed is incorrect or expired.",
             "#bad-verification-code"),
    "refresh": ("bad_refresh_token", "The refresh token passed is incorrect or expired.",
                "#bad-refresh-token"),
}


def random_base62(length: int) -> str:
    """``length`` random characters from ``[0-9A-Za-z]`` (the body of GitHub's tokens)."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def github_policy(expiring: bool) -> TokenPolicy:
    """GitHub App user-to-server tokens when ``expiring``, else OAuth App tokens."""
    return TokenPolicy(
        access_token=lambda: ("ghu_" if expiring else "gho_") + random_base62(36),
        code=lambda: secrets.token_hex(10),
        refresh_token=(lambda: "ghr_" + random_base62(76)) if expiring else None,
        access_ttl=APP_ACCESS_TTL if expiring else None,
        refresh_ttl=APP_REFRESH_TTL if expiring else None)


def _error_fields(error: OAuthError, grant: str) -> dict[str, str]:
    key = error.error if error.error in ERRORS else grant
    name, description, anchor = ERRORS[key]
    return {"error": name, "error_description": description,
            "error_uri": TROUBLESHOOTING + anchor}


class GitHubOAuth:
    """GitHub's authorize, token and authorization-deletion endpoints."""

    def __init__(self, authority: OAuthAuthority) -> None:
        self.authority = authority

    def routes(self) -> list[Route]:
        return [
            Route("/login/oauth/authorize", ("GET",), self.authorize),
            Route("/login/oauth/access_token", ("POST",), self.access_token),
            Route("/api/v3/applications/<client_id>/<any(grant, token):what>", ("DELETE",),
                  self.delete_authorization),
        ]

    @property
    def expiring(self) -> bool:
        return self.authority.policy.refresh_token is not None

    def authorize(self, request: Request) -> Response:
        return authorize_endpoint(self.authority, request)

    def access_token(self, request: Request) -> Response:
        params = request_params(request)
        grant = "refresh" if params.get("grant_type") == "refresh_token" else "code"
        try:
            if params.get("grant_type", "authorization_code") not in ("authorization_code",
                                                                      "refresh_token"):
                raise OAuthError("unsupported_grant_type", "unsupported grant")
            fields = self._exchange(params) if grant == "code" else self._refresh(params)
        except OAuthError as e:
            fields = _error_fields(e, grant)
        if "application/json" in request.headers.get("Accept", ""):
            return json_response(fields)
        return Response(urlencode(fields), status=200,
                        content_type="application/x-www-form-urlencoded; charset=utf-8")

    def _exchange(self, params: dict[str, str]) -> dict[str, str | int]:
        issued = self.authority.exchange_code(
            params.get("client_id", ""), params.get("client_secret", ""),
            params.get("code", ""), params.get("redirect_uri") or None,
            params.get("code_verifier") or None)
        return self._success(issued.access_token, issued.refresh_token, issued.info.scopes)

    def _refresh(self, params: dict[str, str]) -> dict[str, str | int]:
        issued = self.authority.refresh(params.get("client_id", ""),
                                        params.get("client_secret", ""),
                                        params.get("refresh_token", ""))
        return self._success(issued.access_token, issued.refresh_token, issued.info.scopes)

    def _success(self, access: str, refresh: str | None,
                 scopes: tuple[str, ...]) -> dict[str, str | int]:
        if not self.expiring:
            return {"access_token": access, "scope": ",".join(scopes), "token_type": "bearer"}
        return {"access_token": access, "expires_in": APP_ACCESS_TTL,
                "refresh_token": refresh or "", "refresh_token_expires_in": APP_REFRESH_TTL,
                "scope": "", "token_type": "bearer"}

    def delete_authorization(self, request: Request, client_id: str, what: str) -> Response:
        """Revoke one token (``token``) or the user's whole grant (``grant``)."""
        credentials = request.authorization
        try:
            if credentials is None or credentials.username != client_id:
                raise OAuthError("invalid_client", "basic auth required")
            self.authority.check_client(client_id, credentials.password or "")
        except OAuthError:
            return json_response({"message": "Requires authentication",
                                  "documentation_url": "https://docs.github.com/rest",
                                  "status": "401"}, 401)
        body = request.get_json(silent=True) or {}
        token = str(body.get("access_token", "")) if isinstance(body, dict) else ""
        info = self.authority.access_tokens.get(token)
        if what == "grant":
            done = self.authority.revoke_grant(client_id, token) > 0
        else:
            done = info is not None and info.client_id == client_id and \
                self.authority.revoke(token)
        if not done:
            return json_response({"message": "Not Found",
                                  "documentation_url": "https://docs.github.com/rest",
                                  "status": "404"}, 404)
        return Response(status=204)

