"""OAuth 2.0 code exchange (RFC 6749 §4.1.3, with PKCE), refresh (§6) and revocation
(RFC 7009) against a provider's endpoints.

Responses may be JSON or form-encoded (GitHub answers form-encoded unless asked for JSON; we
always ask). The client authenticates in the form body (``client_secret_post``) or, where the
provider table says ``client_auth: basic`` (Bitbucket), with HTTP Basic and no secret in the
form. Granted scopes are read from ``scope`` or Bitbucket's ``scopes``. Errors never carry a
token or a response body: ``invalid_grant`` (and GitHub's ``bad_refresh_token``, sent with
HTTP 200) → :class:`InvalidGrant`; 5xx, 429 and network failures → ``UnavailableError``; other
refusals → ``PermanentError``. Every request leaves through :mod:`shared.http_egress`: the
host's addresses are checked at each use and the connection pinned to a checked one, and a
redirect is refused (``provider.redirect_refused``), never followed with the form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl

import requests

from shared import http_egress
from shared.errors import PermanentError, UnavailableError
from shared.ports import Clock
from shared.vault.tokens import TokenSet

_INVALID_GRANT = {"invalid_grant", "bad_refresh_token"}


class InvalidGrant(PermanentError):
    status, key, title = 409, "vault.invalid_grant", "The provider refused the refresh token"
    reauth_key = "vault.needs_reauth"  # the status_reason of the record it leaves needs_reauth


class CodeRejected(PermanentError):
    status, key, title = 400, "oauth.code_rejected", "The provider refused the authorization code"


class TokenEndpoint(Protocol):
    def refresh(self, refresh_token: str) -> TokenSet: ...

    def revoke(self, token: str) -> bool:
        """Revoke at the provider; ``False`` when the provider offers no revocation."""


EndpointResolver = Callable[[Mapping[str, Any]], TokenEndpoint]  # vault record → its endpoint


def as_resolver(endpoint: TokenEndpoint | EndpointResolver) -> EndpointResolver:
    """One endpoint for every record, or a resolver by the vault record (its tenant, and the
    registered ``host`` it was issued by: :func:`shared.vault.endpoints.endpoint_for`)."""
    if hasattr(endpoint, "refresh"):
        return lambda doc: endpoint  # type: ignore[return-value]
    return endpoint  # type: ignore[return-value]


@dataclass(frozen=True, repr=False)
class ClientCredentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r})"


class OAuthTokenClient:
    """A provider's token (and optional revocation) endpoint over HTTPS with timeouts."""

    def __init__(self, token_url: str, credentials: ClientCredentials, session: requests.Session,
                 clock: Clock, *, revoke_url: str | None = None, revoke_style: str = "rfc7009",
                 timeout: float = 10.0, client_auth: str = "post",
                 local_mode: bool | None = None) -> None:
        if client_auth not in ("post", "basic"):
            raise ValueError("client_auth must be post or basic")
        self._token_url, self._revoke_url, self._revoke_style = token_url, revoke_url, revoke_style
        self._basic = client_auth == "basic"
        self._credentials = credentials
        self._session = http_egress.harden(session, local_mode=local_mode)
        self._clock, self._timeout = clock, timeout

    def exchange_code(self, code: str, redirect_uri: str,
                      code_verifier: str | None = None) -> TokenSet:
        """Redeem an authorization code (with its PKCE verifier) for tokens."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": self._credentials.client_id,
                "client_secret": self._credentials.client_secret}
        if code_verifier:
            form["code_verifier"] = code_verifier
        try:
            body = self._post(self._token_url, form, what="code exchange")
        except http_egress.EgressBlocked:
            raise
        except PermanentError as e:
            raise CodeRejected("the provider refused the code exchange") from e
        if body.get("error"):  # e.g. GitHub's bad_verification_code, sent with HTTP 200
            raise CodeRejected("the provider refused the authorization code")
        if not body.get("access_token"):
            raise CodeRejected("the code exchange answered without an access token")
        return self._token_set(body, None)

    def refresh(self, refresh_token: str) -> TokenSet:
        body = self._post(self._token_url, {
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
        }, what="token refresh")
        if body.get("error") in _INVALID_GRANT:
            raise InvalidGrant("the provider refused the refresh token")
        if body.get("error") or not body.get("access_token"):
            raise PermanentError("token refresh answered without an access token",
                                 key="vault.refresh_rejected")
        return self._token_set(body, refresh_token)

    def revoke(self, token: str) -> bool:
        if not self._revoke_url:
            return False
        if self._revoke_style == "github_grant":
            return self._revoke_github_grant(token)
        self._post(self._revoke_url, {
            "token": token, "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
        }, what="token revocation")
        return True

    def _revoke_github_grant(self, token: str) -> bool:
        """GitHub: ``DELETE /applications/{client_id}/grant`` revokes the whole grant."""
        url = self._revoke_url.replace("{client_id}", self._credentials.client_id)
        try:
            response = self._session.delete(
                url, json={"access_token": token}, timeout=self._timeout,
                auth=(self._credentials.client_id, self._credentials.client_secret),
                headers={"Accept": "application/vnd.github+json"})
        except requests.RequestException as e:
            raise UnavailableError("token revocation: provider unreachable") from e
        if response.status_code >= 500 or response.status_code == 429:
            raise UnavailableError(f"token revocation: provider answered {response.status_code}")
        return response.status_code in (204, 404)  # 404: already revoked

    def _post(self, url: str, form: dict[str, str], *, what: str) -> dict:
        auth = None
        if self._basic:  # credentials in the Authorization header only, never in the form
            form = {k: v for k, v in form.items() if k not in ("client_id", "client_secret")}
            auth = (self._credentials.client_id, self._credentials.client_secret)
        try:
            response = self._session.post(url, data=form, timeout=self._timeout, auth=auth,
                                          headers={"Accept": "application/json"})
        except requests.RequestException as e:
            raise UnavailableError(f"{what}: provider unreachable") from e
        if response.status_code >= 500 or response.status_code == 429:
            raise UnavailableError(f"{what}: provider answered {response.status_code}")
        body = _parse(response)
        if response.status_code >= 400 and body.get("error") not in _INVALID_GRANT:
            raise PermanentError(f"{what}: provider answered {response.status_code}",
                                 key="vault.provider_refused")
        return body

    def _token_set(self, body: dict, old_refresh: str | None) -> TokenSet:
        expires_in = body.get("expires_in")
        expires_at = None
        if expires_in not in (None, ""):
            expires_at = self._clock.now() + timedelta(seconds=int(expires_in))
        scope = str(body.get("scope") or body.get("scopes") or "")
        return TokenSet(
            access_token=str(body["access_token"]),
            refresh_token=str(body.get("refresh_token") or old_refresh or "") or None,
            expires_at=expires_at,
            scopes=tuple(s for s in scope.replace(",", " ").split() if s),
        )


def _parse(response: requests.Response) -> dict:
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    return dict(parse_qsl(response.text))
