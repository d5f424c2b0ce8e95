"""GitLab's OAuth 2.0 provider (Doorkeeper) as gitlab.com answers it.

* ``GET /oauth/authorize?client_id&redirect_uri&response_type=code&state&scope
  &code_challenge&code_challenge_method=S256`` - auto-approves as the signed-in user; 302 to
  the exactly registered ``redirect_uri`` with ``code`` and ``state``; unknown client or
  unregistered redirect URI → 400 page, no redirect. ``redirect_uri`` and
  ``response_type=code`` are required.
* ``POST /oauth/token`` (form or JSON; client_secret_post or HTTP Basic):
  ``authorization_code`` (with ``redirect_uri`` and, after a challenge, ``code_verifier``) and
  ``refresh_token`` (single use, rotating). Success: ``{"access_token", "token_type":
  "Bearer", "expires_in": 7200, "refresh_token", "scope", "created_at"}`` with 64-hex-character
  tokens. Errors: ``invalid_grant`` / ``unsupported_grant_type`` / ``invalid_request`` with
  400, ``invalid_client`` with 401, as ``{"error", "error_description"}`` plus a
  ``WWW-Authenticate`` header.
* ``POST /oauth/revoke`` (RFC 7009: ``token``, ``client_id``, ``client_secret``) → 200 ``{}``
  also for unknown tokens; revoking either token of a pair ends both; another client's token
  → 403 ``unauthorized_client``.
"""

from __future__ import annotations

import secrets

from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenPolicy
from keyway.simulators.server import Route
from keyway.simulators.wire import authorize_endpoint, json_response, request_params

ACCESS_TTL = 7200  # 2 hours, every GitLab OAuth access token since 15.0
INVALID_GRANT = ("The provided authorization grant is invalid, expired, revoked, does not "
                 "match the redirection URI used in the authorization request, or was issued "
                 "to another client.")
# provider-neutral error -> (status, GitLab error, description)
ERRORS = {
    "invalid_client": (401, "invalid_client", "Client authentication failed due to unknown "
                       "client, no client authentication included, or unsupported "
                       "authentication method."),
    "invalid_grant": (400, "invalid_grant", INVALID_GRANT),
    "redirect_uri_mismatch": (400, "invalid_grant", INVALID_GRANT),
    "unsupported_grant_type": (400, "unsupported_grant_type", "The authorization grant type "
                               "is not supported by the authorization server."),
    "invalid_request": (400, "invalid_request", "The request is missing a required parameter, "
                        "includes an unsupported parameter value, or is otherwise malformed."),
}


def gitlab_policy() -> TokenPolicy:
    """Doorkeeper's opaque 64-hex tokens, 2-hour access tokens, rotating refresh tokens."""
    return TokenPolicy(access_token=lambda: secrets.token_hex(32),
                       code=lambda: secrets.token_hex(32),
                       refresh_token=lambda: secrets.token_hex(32), access_ttl=ACCESS_TTL,
                       redirect_uri_required=True, response_type_required=True)


def oauth_error(error: OAuthError) -> Response:
    """A token-endpoint error in Doorkeeper's shape."""
    status, name, description = ERRORS.get(error.error, ERRORS["invalid_request"])
    challenge = f'Bearer realm="Doorkeeper", error="{name}", error_description="{description}"'
    return json_response({"error": name, "error_description": description}, status,
                         {"WWW-Authenticate": challenge, "Cache-Control": "no-store",
                          "Pragma": "no-cache"})


class GitLabOAuth:
    """GitLab's authorize, token and revoke endpoints."""

    def __init__(self, authority: OAuthAuthority) -> None:
        self.authority = authority

    def routes(self) -> list[Route]:
        return [
            Route("/oauth/authorize", ("GET",), self.authorize),
            Route("/oauth/token", ("POST",), self.token),
            Route("/oauth/revoke", ("POST",), self.revoke),
        ]

    def authorize(self, request: Request) -> Response:
        return authorize_endpoint(self.authority, request)

    def token(self, request: Request) -> Response:
        params = request_params(request)
        client = (params.get("client_id", ""), params.get("client_secret", ""))
        try:
            issued = self.authority.grant(*client, params)
        except OAuthError as e:
            return oauth_error(e)
        return json_response({
            "access_token": issued.access_token, "token_type": "Bearer",
            "expires_in": ACCESS_TTL, "refresh_token": issued.refresh_token,
            "scope": " ".join(issued.info.scopes), "created_at": int(issued.info.issued_at),
        }, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def revoke(self, request: Request) -> Response:
        params = request_params(request)
        client_id = params.get("client_id", "")
        try:
            self.authority.check_client(client_id, params.get("client_secret", ""))
        except OAuthError as e:
            return oauth_error(e)
        token = params.get("token", "")
        info = self.authority.access_tokens.get(token)
        refresh = self.authority.refresh_tokens.get(token)
        owner = info.client_id if info else refresh.client_id if refresh else client_id
        if owner != client_id:
            return json_response({"error": "unauthorized_client", "error_description":
                                  "You are not authorized to revoke this token"}, 403)
        self.authority.revoke(token)
        return json_response({})
