"""Bitbucket Cloud's OAuth 2.0 consumer endpoints as bitbucket.org answers them.

* ``GET /site/oauth2/authorize?client_id&response_type=code&state[&redirect_uri]`` -
  auto-approves as the signed-in user; 302 to the consumer's callback URL with ``code`` and
  ``state``. The token's scopes are the permissions ticked on the consumer
  (:meth:`BitbucketOAuth.set_consumer_scopes`), whatever the request's ``scope`` says.
* ``POST /site/oauth2/access_token`` - client authentication by HTTP Basic only (credentials in
  the form are not accepted); ``authorization_code`` and ``refresh_token`` grants. Success:
  ``{"access_token", "scopes", "expires_in": 7200, "refresh_token", "token_type": "bearer",
  "state"}``. A refresh returns a new access token and the same refresh token (refresh tokens
  do not rotate and do not expire); earlier access tokens live out their two hours. Errors:
  ``{"error", "error_description"}``, 400 (401 for client authentication).
"""

from __future__ import annotations

import secrets

from werkzeug.wrappers import Request, Response

from keyway.simulators.oauth import OAuthAuthority
from keyway.simulators.oauth_model import OAuthError, TokenPolicy
from keyway.simulators.server import Route
from keyway.simulators.wire import json_response, sign_in_page

ACCESS_TTL = 7200
# A consumer ticked Account read, Pull requests read, Issues write (what keyway needs)
DEFAULT_SCOPES = ("account", "pullrequest", "issue:write")
ERRORS = {
    "invalid_client": (401, "invalid_client", "Invalid OAuth client credentials"),
    "invalid_grant": (400, "invalid_grant", "Invalid authorization code or refresh token"),
    "redirect_uri_mismatch": (400, "invalid_grant", "Redirect URI mismatch"),
    "unsupported_grant_type": (400, "unsupported_grant_type", "Unsupported grant type"),
    "invalid_request": (400, "invalid_request", "Invalid request"),
}


def bitbucket_policy() -> TokenPolicy:
    """Opaque tokens, 2-hour access tokens, refresh tokens that do not rotate."""
    return TokenPolicy(access_token=lambda: secrets.token_urlsafe(96),
                       code=lambda: secrets.token_urlsafe(18),
                       refresh_token=lambda: secrets.token_urlsafe(24),
                       access_ttl=ACCESS_TTL, response_type_required=True,
                       rotate_refresh=False)


def oauth_error(error: OAuthError) -> Response:
    status, name, description = ERRORS.get(error.error, ERRORS["invalid_request"])
    return json_response({"error": name, "error_description": description}, status)


class BitbucketOAuth:
    """The authorize and access-token endpoints of Bitbucket's OAuth consumers."""

    def __init__(self, authority: OAuthAuthority) -> None:
        self.authority = authority
        self.consumer_scopes: dict[str, tuple[str, ...]] = {}

    def routes(self) -> list[Route]:
        return [Route("/site/oauth2/authorize", ("GET",), self.authorize),
                Route("/site/oauth2/access_token", ("POST",), self.token)]

    def set_consumer_scopes(self, client_id: str, scopes: tuple[str, ...]) -> None:
        self.consumer_scopes[client_id] = tuple(scopes)

    def authorize(self, request: Request) -> Response:
        args = request.args.to_dict()
        if self.authority.sign_in_page and args.get("login") not in self.authority.accounts:
            return sign_in_page(self.authority, request)
        scopes = self.consumer_scopes.get(args.get("client_id", ""), DEFAULT_SCOPES)
        try:
            location = self.authority.authorize({**args, "scope": " ".join(scopes)})
        except OAuthError as e:
            return Response(f"<html><body><h1>Invalid request</h1><p>{e.description}</p>"
                            "</body></html>", status=400, content_type="text/html")
        return Response(status=302, headers={"Location": location})

    def token(self, request: Request) -> Response:
        form = request.form.to_dict()
        basic = request.authorization
        try:
            if basic is None or basic.type != "basic" or "client_secret" in form:
                raise OAuthError("invalid_client", "client authentication must be HTTP Basic")
            client = (basic.username or "", basic.password or "")
            form.pop("code_verifier", None)  # Bitbucket has no PKCE
            issued = self.authority.grant(*client, form, require_code=False)
        except OAuthError as e:
            return oauth_error(e)
        return json_response({
            "access_token": issued.access_token, "scopes": " ".join(issued.info.scopes),
            "expires_in": ACCESS_TTL, "refresh_token": issued.refresh_token,
            "token_type": "bearer", "state": form.get("grant_type")},
            headers={"Cache-Control": "no-store"})
