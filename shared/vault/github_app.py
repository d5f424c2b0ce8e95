"""GitHub App installation tokens: the vault mints them instead of holding a refresh token.

The vault signs a short RS256 JWT with the app's private key (secret ``github-app-private-key``;
app id from ``KEYWAY_GITHUB_APP_ID``) and trades it at ``POST /app/installations/{id}/
access_tokens`` for a 1-hour ``ghs_`` token, always asking for exactly the provider table's read
permissions, so GitHub itself refuses code access. A token granted more than that is refused
(and revoked at GitHub, best effort). Tokens are cached in memory per installation until 5
minutes before expiry; concurrent callers share one request. Errors name status codes and
installation ids, never a token, a JWT or the key. ``api_base`` must already have passed the
SSRF guard (:mod:`shared.providers.ssrf`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from shared import http_egress
from shared.clock import SystemClock, parse_iso
from shared.errors import ConfigError, InvalidInput, NotFound, PermanentError, UnavailableError
from shared.fetch.client import ProviderClient
from shared.fetch.errors import (
    EgressRefused,
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    TokenRejected,
)
from shared.log import get_logger
from shared.ports import Clock, SecretSource
from shared.providers import registry
from shared.providers.schema import GitHubAppSpec
from shared.vault.tokens import TokenSet

APP_ID_ENV = "KEYWAY_GITHUB_APP_ID"
PRIVATE_KEY_SECRET = "github-app-private-key"  # noqa: S105 - the secret's name, not a value
MAX_JWT_TTL_SECONDS = 600  # GitHub: exp no more than 10 minutes into the future
CLOCK_DRIFT_SECONDS = 60  # GitHub recommends back-dating iat by 60 s
CACHE_MARGIN = timedelta(minutes=5)  # re-mint when a cached token has less left than this
MAX_PAGES = 50  # /user/installations pages at 100 each
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # numeric app id or client id (Iv23…)
_INSTALLATION_ID = re.compile(r"[1-9][0-9]{0,19}")
log = get_logger("keyway.vault.github_app")


class AppCredentialsRejected(PermanentError):
    key, title = "github_app.bad_credentials", "GitHub refused the app's JWT"


class InstallationGone(PermanentError):  # uninstalled or suspended: the vault marks needs_reauth
    key, title = "github_app.installation_gone", "The GitHub App installation is gone"


class ExcessPermissions(PermanentError):
    key, title = "github_app.excess_permissions", "GitHub granted more than was requested"


def _bad_response(what: str) -> PermanentError:
    return PermanentError(f"installation token: {what}", key="github_app.bad_response")


@dataclass(frozen=True, repr=False)
class AppCredentials:
    """A GitHub App's id and PEM private key; the key never shows in a repr or a pickle."""

    app_id: str
    private_key_pem: bytes

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("AppCredentials cannot be pickled")


def load_app_credentials(secrets: SecretSource,
                         env: Mapping[str, str]) -> AppCredentials | None:
    """The configured app (id from ``KEYWAY_GITHUB_APP_ID``, key from the secret
    ``github-app-private-key``), or None when no app id is set. A set id with a missing or
    unusable key is a :class:`ConfigError`."""
    app_id = (env.get(APP_ID_ENV) or "").strip()
    if not app_id:
        return None
    if not _APP_ID.fullmatch(app_id):
        raise ConfigError(f"{APP_ID_ENV} is not a GitHub App id", key="github_app.bad_app_id")
    try:
        pem = secrets.access(PRIVATE_KEY_SECRET)
    except NotFound as e:
        raise ConfigError(f"{APP_ID_ENV} is set but the secret {PRIVATE_KEY_SECRET} is missing",
                          key="github_app.no_private_key") from e
    if b"\\n" in pem and b"\n" not in pem.strip():  # a PEM pasted into one env-var line
        pem = pem.replace(b"\\n", b"\n")
    _check_private_key(pem)
    return AppCredentials(app_id, pem)


def _check_private_key(pem: bytes) -> None:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey) or key.key_size < 2048:
        raise ConfigError(f"the secret {PRIVATE_KEY_SECRET} is not an RSA private key "
                          "(PEM, unencrypted, at least 2048 bits)",
                          key="github_app.bad_private_key")


def app_jwt(credentials: AppCredentials, now: datetime, ttl_seconds: int) -> str:
    """The app's RS256 JWT: ``iat`` = now − 60 s (clock drift), ``exp`` = now + ttl (at most
    600 s, else :class:`InvalidInput`), ``iss`` = the app id."""
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not (
            0 < ttl_seconds <= MAX_JWT_TTL_SECONDS):
        raise InvalidInput(f"a GitHub App JWT lives 1 to {MAX_JWT_TTL_SECONDS} seconds",
                           key="github_app.jwt_ttl")
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware", key="github_app.naive_time")
    issued = int(now.timestamp())
    claims = {"iat": issued - CLOCK_DRIFT_SECONDS, "exp": issued + ttl_seconds,
              "iss": credentials.app_id}
    try:
        return jwt.encode(claims, credentials.private_key_pem, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as e:
        raise ConfigError("the GitHub App private key cannot sign RS256",
                          key="github_app.bad_private_key") from e


def _installation_key(installation_id: str | int) -> str:
    key = str(installation_id)
    if isinstance(installation_id, bool) or not _INSTALLATION_ID.fullmatch(key):
        raise InvalidInput("an installation id is a positive integer",
                           key="github_app.bad_installation_id")
    return key


def _raise_for_transient(response: requests.Response, what: str) -> None:
    """5xx, 429 and 403-with-no-budget are worth retrying later."""
    status = response.status_code
    if status >= 500 or status == 429 or (
            status == 403 and response.headers.get("X-RateLimit-Remaining") == "0"):
        raise UnavailableError(f"{what}: GitHub answered {status}")


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class InstallationTokenMinter:
    """Mints (and caches) installation tokens narrowed to ``spec.permissions``; thread-safe."""

    def __init__(self, credentials: AppCredentials, api_base: str, session: requests.Session,
                 clock: Clock, spec: GitHubAppSpec, *, timeout: float = 10.0,
                 local_mode: bool | None = None) -> None:
        if "contents" in spec.permissions or any(v != "read" for v in spec.permissions.values()):
            raise ConfigError("a GitHub App token asks only for read permissions, never "
                              "contents", key="github_app.bad_permissions")
        self._credentials, self._clock = credentials, clock
        self._session = http_egress.harden(session, local_mode=local_mode)
        self._api_base, self._spec, self._timeout = api_base.rstrip("/"), spec, timeout
        self._requested = dict(spec.permissions)
        self._cache: dict[str, TokenSet] = {}
        self._flights: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def mint(self, installation_id: str) -> TokenSet:
        """A token for the installation with at least 5 minutes left: the cached one, or a
        fresh one (one HTTP call however many threads ask at once)."""
        key = _installation_key(installation_id)
        cached = self._cached(key)
        if cached is not None:
            return cached
        with self._flight(key):
            cached = self._cached(key)
            if cached is not None:
                return cached
            tokens = self._request(key)
            with self._lock:
                self._cache[key] = tokens
            return tokens

    def invalidate(self, installation_id: str) -> None:
        """Forget the cached token (e.g. after GitHub answered 401 to it)."""
        with self._lock:
            self._cache.pop(_installation_key(installation_id), None)

    def _flight(self, key: str) -> threading.Lock:
        with self._lock:
            return self._flights.setdefault(key, threading.Lock())

    def _cached(self, key: str) -> TokenSet | None:
        with self._lock:
            tokens = self._cache.get(key)
        if tokens is None or tokens.expires_at is None:
            return None
        return tokens if tokens.expires_at - self._clock.now() > CACHE_MARGIN else None

    def _request(self, key: str) -> TokenSet:
        assertion = app_jwt(self._credentials, self._clock.now(), self._spec.jwt_ttl_seconds)
        url = f"{self._api_base}/app/installations/{key}/access_tokens"
        try:
            response = self._session.post(
                url, json={"permissions": self._requested}, timeout=self._timeout,
                headers={**API_HEADERS, "Authorization": f"Bearer {assertion}"})
        except requests.RequestException as e:
            raise UnavailableError("installation token: GitHub unreachable") from e
        self._raise_for_status(response, key)
        return self._token_set(_json_object(response))

    def _raise_for_status(self, response: requests.Response, key: str) -> None:
        status = response.status_code
        if status in (200, 201):
            return
        _raise_for_transient(response, "installation token")
        if status == 401:
            raise AppCredentialsRejected("GitHub refused the app's JWT (401)")
        if status in (403, 404):
            self.invalidate(key)
            raise InstallationGone(f"installation {key} is uninstalled or suspended ({status})")
        if status == 422:
            raise PermanentError(f"installation {key} does not grant the requested permissions",
                                 key="github_app.permissions_not_granted")
        raise PermanentError(f"installation token: GitHub answered {status}",
                             key="github_app.refused")

    def _token_set(self, body: dict[str, Any]) -> TokenSet:
        token, granted = body.get("token"), body.get("permissions")
        if not isinstance(token, str) or not token:
            raise _bad_response("no token in the answer")
        if not isinstance(granted, dict):
            self._revoke_quietly(token)
            raise _bad_response("no permissions in the answer")
        excess = sorted(str(k)[:40] for k, v in granted.items()
                        if k == "contents" or self._requested.get(k) != v)
        if excess:
            self._revoke_quietly(token)
            raise ExcessPermissions("GitHub granted permissions beyond the requested reads: "
                                    + ", ".join(excess[:10]))
        return TokenSet(access_token=token, refresh_token=None,
                        expires_at=self._expiry(body.get("expires_at"), token),
                        scopes=tuple(f"{k}:{v}" for k, v in sorted(granted.items())))

    def _expiry(self, raw: Any, token: str) -> datetime:
        """GitHub's ``expires_at``, capped at the table's token lifetime."""
        try:
            expires_at = parse_iso(raw)
        except (TypeError, ValueError, AttributeError):
            self._revoke_quietly(token)
            raise _bad_response("no valid expires_at in the answer") from None
        cap = self._clock.now() + timedelta(seconds=self._spec.installation_token_ttl_seconds)
        return min(expires_at, cap)

    def _revoke_quietly(self, token: str) -> None:
        """``DELETE /installation/token``: a token we refuse must not live on at GitHub."""
        try:
            response = self._session.delete(
                f"{self._api_base}/installation/token", timeout=self._timeout,
                headers={**API_HEADERS, "Authorization": f"Bearer {token}"})
            revoked = response.status_code == 204
        except (requests.RequestException, http_egress.EgressBlocked):
            revoked = False
        if not revoked:
            log.warning("github_app.refused_token_not_revoked")


def verify_installation_belongs_to_user(api_base: str, user_token: str, installation_id: str,
                                        session: requests.Session) -> bool:
    """Whether the user behind ``user_token`` (a GitHub App user-to-server token) can access
    ``installation_id``, per ``GET /user/installations`` (every page, through the
    allowlisted :class:`~shared.fetch.client.ProviderClient`, whose next-page check keeps
    the walk on the API)."""
    wanted, template = _installation_key(installation_id), "GET /user/installations"
    what = "listing the user's installations"
    client = ProviderClient(registry.get("github"), api_base, user_token, session,
                            SystemClock(), purpose="oauth", max_attempts=2)
    try:
        page = client.get(template)
        for _ in range(MAX_PAGES):
            items = page.body.get("installations") if isinstance(page.body, dict) else None
            if not isinstance(items, list):
                raise PermanentError(f"{what}: GitHub answered something else",
                                     key="github_app.installations_refused")
            if any(isinstance(i, dict) and str(i.get("id")) == wanted for i in items):
                return True
            if page.next_url is None:
                return False
            try:
                page = client.get_next(page.next_url, template)
            except EgressRefused as e:
                raise PermanentError(f"{what}: the next page points outside the API",
                                     key="github_app.bad_pagination") from e
    except TokenRejected as e:
        raise PermanentError(f"{what}: GitHub refused the user token (401)",
                             key="github_app.user_token_rejected") from e
    except (ProviderRefused, NotFoundAtProvider, MalformedResponse) as e:
        raise PermanentError(f"{what}: GitHub refused ({e.key})",
                             key="github_app.installations_refused") from e
    raise PermanentError("the user can access too many installations to list",
                         key="github_app.too_many_installations")
