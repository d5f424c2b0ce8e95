"""The OAuth 2.0 authorization server shared by the simulators (transport-free).

Authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636, ``S256`` only); single-use codes
expiring after ``TokenPolicy.code_ttl`` s, a replayed code revoking what it issued (RFC 6749
§10.5); access tokens with an optional lifetime; single-use refresh tokens that rotate and end
the access token issued with them; revocation of a token with its partner (RFC 7009) or of a
whole grant (one client, one user). The signed-in user approves every request (no consent
page) unless :attr:`OAuthAuthority.approve` is False.

Every simulator seeds at least two accounts (:attr:`OAuthAuthority.accounts`). Who signs in: the
account an authorization request names in ``login`` (GitHub documents this parameter: "Suggests
a specific account to use for signing in and authorizing the app"; the other simulators accept
it the same way), else the default :attr:`OAuthAuthority.account`. With
:attr:`OAuthAuthority.sign_in_page` on (``make run``'s sandbox), a request without a known ``login``
gets the provider's sign-in page instead — one link per account
(:func:`keyway.simulators.wire.authorize_endpoint`) — so a person in a browser chooses who
signs in, as on the real site.

Failures raise :class:`OAuthError` with a provider-neutral ``error`` that the provider modules
translate: ``invalid_client`` (unknown client or wrong secret), ``redirect_uri_mismatch``
(unregistered, or not the authorize request's), ``invalid_grant`` (code or refresh token
unknown, used, expired, revoked or another client's; PKCE verifier missing or wrong),
``invalid_request``, ``unsupported_grant_type``, and on the resource side ``invalid_token``
with ``reason`` ``unknown``, ``expired`` or ``revoked``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from keyway.simulators.oauth_model import (
    Account,
    Client,
    Issued,
    OAuthError,
    TokenInfo,
    TokenPolicy,
)

PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1 verifier alphabet


def s256(verifier: str) -> str:
    """The PKCE ``S256`` challenge of ``verifier``: base64url(sha256), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def with_query(url: str, **params: str | None) -> str:
    """``url`` with ``params`` (None values dropped) appended to its query string."""
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}{'&' if '?' in url else '?'}{extra}" if extra else url


@dataclass
class _Code:
    client_id: str
    redirect_uri: str | None  # as given at authorize (None: the default was used)
    scopes: tuple[str, ...]
    challenge: str | None
    account: Account
    expires_at: float
    used: bool = False
    issued: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Refresh:
    client_id: str
    account: Account
    scopes: tuple[str, ...]
    expires_at: float | None
    access_token: str


def _parse_scopes(raw: str | None) -> tuple[str, ...]:
    return tuple(s for s in re.split(r"[\s,]+", raw or "") if s)


class OAuthAuthority:
    """Clients, codes and token bookkeeping behind a simulator; thread-safe."""

    def __init__(self, policy: TokenPolicy, account: Account, *, clock: Callable[[], float],
                 on_issue: Callable[[str], object] | None = None) -> None:
        self.policy, self.account, self.clock = policy, account, clock
        self.on_issue = on_issue or (lambda token: token)  # e.g. the leak guard's track
        self.approve = True
        self.sign_in_page = False  # True: a request without ``login`` shows who may sign in
        self.client_policies: dict[str, TokenPolicy] = {}  # a client's own token kind
        self.accounts: dict[str, Account] = {account.login: account}
        self.clients: dict[str, Client] = {}
        self.access_tokens: dict[str, TokenInfo] = {}
        self.refresh_tokens: dict[str, _Refresh] = {}
        self.revoked: set[str] = set()
        self._codes: dict[str, _Code] = {}
        self._lock = threading.RLock()

    def register_client(self, client_id: str, client_secret: str,
                        redirect_uris: list[str]) -> None:
        with self._lock:
            self.clients[client_id] = Client(client_id, client_secret, tuple(redirect_uris))

    def set_account(self, account: Account) -> None:
        """The default signed-in user (also one of :attr:`accounts`)."""
        with self._lock:
            self.account = account
            self.accounts[account.login] = account

    def add_account(self, account: Account) -> None:
        """Another user who can sign in (by ``login``)."""
        with self._lock:
            self.accounts[account.login] = account

    def signing_in(self, params: Mapping[str, str]) -> Account:
        """The account an authorization request signs in: its ``login``, else the default."""
        with self._lock:
            return self.accounts.get(params.get("login") or "", self.account)

    # ---- authorization endpoint ---------------------------------------------------------------
    def authorize(self, params: Mapping[str, str]) -> str:
        """The redirect location for an authorization request: the registered redirect URI
        with ``code`` and ``state``, or with ``error``. Raises :class:`OAuthError` when the
        client or redirect URI is not trusted - then nothing may redirect."""
        with self._lock:
            client = self.clients.get(params.get("client_id", ""))
            if client is None:
                raise OAuthError("invalid_client", "The client_id is not registered.")
            given = params.get("redirect_uri") or None
            target = given or ("" if self.policy.redirect_uri_required
                               else client.redirect_uris[0] if client.redirect_uris else "")
            if target not in client.redirect_uris:
                raise OAuthError("redirect_uri_mismatch",
                                 "The redirect_uri is not registered for this application.")
            state = params.get("state")
            refusal = self._refusal(params)
            if refusal is not None:
                return with_query(target, error=refusal[0], error_description=refusal[1],
                                  state=state)
            code = self.policy.code()
            self._codes[code] = _Code(
                client.client_id, given, _parse_scopes(params.get("scope")),
                params.get("code_challenge") or None, self.signing_in(params),
                self.clock() + self.policy.code_ttl)
            return with_query(target, code=code, state=state)

    def _refusal(self, params: Mapping[str, str]) -> tuple[str, str] | None:
        if self.policy.response_type_required and params.get("response_type") != "code":
            return "unsupported_response_type", "The response_type must be code."
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if challenge and method != "S256":
            return "invalid_request", "Only the S256 code_challenge_method is supported."
        if method and not (challenge and PKCE_VALUE.match(challenge)):
            return "invalid_request", "The code_challenge is missing or malformed."
        if not self.approve:
            return "access_denied", "The user has denied your application access."
        return None

    # ---- token endpoint -----------------------------------------------------------------------
    def exchange_code(self, client_id: str, client_secret: str, code: str,
                      redirect_uri: str | None, verifier: str | None) -> Issued:
        """authorization_code grant: single use, unexpired, same client, same redirect URI,
        and the PKCE verifier when the authorization request carried a challenge."""
        with self._lock:
            self.check_client(client_id, client_secret)
            entry = self._codes.get(code or "")
            if entry is None or entry.client_id != client_id:
                raise OAuthError("invalid_grant", "The code is incorrect.")
            if entry.used:  # RFC 6749 §10.5: a replayed code ends what it issued
                for token in entry.issued:
                    self._revoke_locked(token)
                raise OAuthError("invalid_grant", "The code was already used.")
            entry.used = True
            if self.clock() >= entry.expires_at:
                raise OAuthError("invalid_grant", "The code has expired.")
            self._check_redirect(entry, redirect_uri)
            self._check_verifier(entry.challenge, verifier)
            issued = self._issue(client_id, entry.account, entry.scopes)
            entry.issued += [issued.access_token, *filter(None, [issued.refresh_token])]
            return issued

    def _check_redirect(self, entry: _Code, redirect_uri: str | None) -> None:
        if redirect_uri is None and not self.policy.redirect_uri_required:
            return
        if redirect_uri != entry.redirect_uri and not (
                entry.redirect_uri is None and redirect_uri in
                self.clients[entry.client_id].redirect_uris[:1]):
            raise OAuthError("redirect_uri_mismatch",
                             "The redirect_uri does not match the authorization request.")

    @staticmethod
    def _check_verifier(challenge: str | None, verifier: str | None) -> None:
        if challenge is None:
            if verifier:
                raise OAuthError("invalid_grant", "A code_verifier was sent without a "
                                 "code_challenge in the authorization request.")
            return
        if not verifier or not PKCE_VALUE.match(verifier):
            raise OAuthError("invalid_grant", "The code_verifier is missing or malformed.")
        if not hmac.compare_digest(s256(verifier), challenge):
            raise OAuthError("invalid_grant", "The code_verifier does not match the challenge.")

    def grant(self, client_id: str, client_secret: str, params: Mapping[str, str], *,
              require_code: bool = True) -> Issued:
        """The token endpoint's two grants from its form/JSON ``params``: ``authorization_code``
        (``code``, ``redirect_uri``, ``code_verifier``) or ``refresh_token``; anything else →
        ``unsupported_grant_type``."""
        grant = params.get("grant_type")
        if grant == "authorization_code":
            if require_code and not params.get("code"):
                raise OAuthError("invalid_request", "code is missing")
            return self.exchange_code(client_id, client_secret, params.get("code", ""),
                                      params.get("redirect_uri") or None,
                                      params.get("code_verifier") or None)
        if grant == "refresh_token":
            return self.refresh(client_id, client_secret, params.get("refresh_token", ""))
        raise OAuthError("unsupported_grant_type", f"grant_type {grant!r}")

    def refresh(self, client_id: str, client_secret: str, refresh_token: str) -> Issued:
        """refresh_token grant: single use; the answer carries a new refresh token and the
        old pair (refresh and access token) stops working — unless the policy does not rotate
        (Bitbucket): then a new access token is issued under the same refresh token and the
        earlier access token lives out its own lifetime."""
        with self._lock:
            self.check_client(client_id, client_secret)
            if self.policy_for(client_id).refresh_token is None:
                raise OAuthError("unsupported_grant_type", "This application has no refresh "
                                 "tokens.")
            entry = self.refresh_tokens.get(refresh_token or "")
            if (entry is None or refresh_token in self.revoked or entry.client_id != client_id
                    or (entry.expires_at is not None and self.clock() >= entry.expires_at)):
                raise OAuthError("invalid_grant", "The refresh token is incorrect or expired.")
            if not self.policy_for(client_id).rotate_refresh:
                return self._reissue(refresh_token, entry)
            self._revoke_locked(refresh_token)
            return self._issue(client_id, entry.account, entry.scopes)

    def _reissue(self, refresh_token: str, entry: _Refresh) -> Issued:
        now, policy = self.clock(), self.policy_for(entry.client_id)
        access = policy.access_token()
        expires = now + policy.access_ttl if policy.access_ttl is not None else None
        info = TokenInfo(entry.client_id, entry.account, entry.scopes, now, expires,
                         refresh_token)
        self.access_tokens[access] = info
        self.on_issue(access)
        self.refresh_tokens[refresh_token] = _Refresh(entry.client_id, entry.account,
                                                      entry.scopes, entry.expires_at, access)
        return Issued(access, info, refresh_token)

    def mint(self, client_id: str = "simulator", account: Account | None = None,
             scopes: tuple[str, ...] = ()) -> Issued:
        """Issue a token pair directly, without the browser flow (for fetcher tests)."""
        with self._lock:
            return self._issue(client_id, account or self.account, scopes)

    def check_client(self, client_id: str, client_secret: str) -> Client:
        """The registered client, or ``invalid_client`` (constant-time secret check)."""
        client = self.clients.get(client_id or "")
        if client is None or not hmac.compare_digest(
                client.client_secret.encode(), (client_secret or "").encode()):
            raise OAuthError("invalid_client", "The client_id and/or client_secret passed "
                             "are incorrect.")
        return client

    def policy_for(self, client_id: str) -> TokenPolicy:
        """The kind of token ``client_id`` is issued: its own (a GitHub App's client gets
        user-to-server tokens where an OAuth App's gets classic ones), else the server's."""
        return self.client_policies.get(client_id, self.policy)

    def _issue(self, client_id: str, account: Account, scopes: tuple[str, ...]) -> Issued:
        now, policy = self.clock(), self.policy_for(client_id)
        access = policy.access_token()
        refresh = policy.refresh_token() if policy.refresh_token else None
        expires = now + policy.access_ttl if policy.access_ttl is not None else None
        info = TokenInfo(client_id, account, scopes, now, expires, refresh)
        self.access_tokens[access] = info
        self.on_issue(access)
        if refresh is not None:
            refresh_expires = now + policy.refresh_ttl if policy.refresh_ttl else None
            self.refresh_tokens[refresh] = _Refresh(client_id, account, scopes,
                                                    refresh_expires, access)
            self.on_issue(refresh)
        return Issued(access, info, refresh)

    # ---- resource side and revocation ---------------------------------------------------------
    def authenticate(self, access_token: str | None) -> TokenInfo:
        """The token's grant, or ``invalid_token`` with ``reason`` unknown/expired/revoked."""
        with self._lock:
            if access_token in self.revoked:
                raise OAuthError("invalid_token", "Token was revoked.", "revoked")
            info = self.access_tokens.get(access_token or "")
            if info is None:
                raise OAuthError("invalid_token", "Token is unknown.", "unknown")
            if info.expires_at is not None and self.clock() >= info.expires_at:
                raise OAuthError("invalid_token", "Token is expired.", "expired")
            return info

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token and its partner; False when unknown."""
        with self._lock:
            return self._revoke_locked(token)

    def _revoke_locked(self, token: str) -> bool:
        info, refresh = self.access_tokens.get(token), self.refresh_tokens.pop(token, None)
        if info is None and refresh is None:
            return False
        partner = info.refresh_token if info is not None else refresh.access_token
        self.revoked.update(t for t in (token, partner) if t)
        if partner:
            self.refresh_tokens.pop(partner, None)
        return True

    def revoke_grant(self, client_id: str, access_token: str) -> int:
        """Revoke every token ``client_id`` holds for the user of ``access_token``."""
        with self._lock:
            info = self.access_tokens.get(access_token)
            if info is None or info.client_id != client_id:
                return 0
            ours = [t for t, i in self.access_tokens.items() if t not in self.revoked
                    and i.client_id == client_id and i.account.id == info.account.id]
            for token in ours:
                self._revoke_locked(token)
            return len(ours)
