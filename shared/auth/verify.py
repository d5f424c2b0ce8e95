"""Bearer-token verification for the API: an ``Authorization`` header in, a Principal out.

:meth:`TokenVerifier.verify` runs these checks in this order and stops at the first failure:

1. the header is ``Bearer <token>`` (scheme case-insensitive), the token at most 8 KiB and
   shaped like a JWS: three base64url segments;
2. the JOSE header, decoded WITHOUT trusting it, is a JSON object whose ``alg`` is ``RS256`` or
   ``ES256`` — ``none``, ``HS*`` and everything else are refused here, before any key lookup,
   so an HMAC token "signed" with a public key never reaches a key; ``crit`` (and so unencoded
   ``b64`` payloads) is refused; ``kid`` is a non-empty string;
3. the key with that ``kid`` comes from the issuer's JWKS (an unknown ``kid`` may trigger one
   rate-limited refetch, see :mod:`shared.auth.jwks`);
4. the key's type matches ``alg`` (RSA ↔ RS256, EC P-256 ↔ ES256);
5. PyJWT verifies the signature with that key object and ``algorithms=[alg]``; the payload is a
   JSON object;
6. ``iss`` equals the configured issuer exactly;
7. ``aud`` is the configured audience, or a list of strings containing it;
8. ``exp`` is present and numeric, and ``now < exp + leeway``;
9. ``nbf``, if present, is numeric and ``nbf <= now + leeway``;
10. ``iat``, if present, is numeric and ``iat <= now + leeway`` (not issued in the future);
11. ``sub`` is a non-empty identifier: the user;
12. the tenant claim is a non-empty identifier: the tenant;
13. the role claim is ``admin`` or ``member``;
14. scopes are the union of ``scope`` (space-separated string) and ``permissions`` (list of
    strings, Auth0 RBAC), either optional but well-typed when present; scopes keyway does not
    know are ignored.

Every failure raises :class:`~shared.auth.principal.Unauthenticated` with the same generic
detail and no chained cause. The reason is logged at info level as ``auth.rejected`` with a
stable ``reason`` code (``wrong_issuer``, ``expired``, ``unknown_kid``, …), so an operator can
see why a token was refused; the token never appears in a log line or an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import jwt

from shared.auth.jwks import JwksSource, algorithm_for
from shared.auth.principal import (
    ROLES,
    SCOPES,
    Principal,
    Role,
    Unauthenticated,
    is_identifier,
)
from shared.log import get_logger

if TYPE_CHECKING:
    from shared.ports import Clock

ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})
MAX_TOKEN_CHARS = 8192
GENERIC_DETAIL = "missing or invalid bearer token"
_JWS_RE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_SIGNATURE_ONLY = {"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                   "verify_iat": False, "verify_aud": False, "verify_iss": False,
                   "verify_sub": False, "verify_jti": False}
_log = get_logger(__name__)


class _Rejected(Exception):
    """Internal: why a token was refused (a stable reason code, never token material)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenVerifier:
    """Verifies OAuth2 bearer JWTs from one issuer for one audience; see the module docstring."""

    def __init__(self, issuer: str, audience: str, jwks: JwksSource, clock: Clock, *,
                 tenant_claim: str, role_claim: str, leeway: int = 30) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        self._issuer, self._audience, self._jwks, self._clock = issuer, audience, jwks, clock
        self._tenant_claim, self._role_claim, self._leeway = tenant_claim, role_claim, leeway

    def verify(self, authorization_header: str | None) -> Principal:
        """The principal the header's token stands for, or ``Unauthenticated``."""
        try:
            return self._verify(authorization_header)
        except _Rejected as rejected:
            reason = rejected.reason
        # Raised outside the except block so the exception carries no cause or context.
        _log.info("auth.rejected", extra={"fields": {"reason": reason}})
        raise Unauthenticated(GENERIC_DETAIL)

    def _verify(self, header: str | None) -> Principal:
        token = _bearer_token(header)
        alg, kid = _trusted_shape(token)
        key = self._key(kid, alg)
        claims = _signed_claims(token, key, alg)
        self._check_issuer_and_audience(claims)
        self._check_times(claims)
        return self._principal(claims)

    def _key(self, kid: str, alg: str) -> Any:
        """The JWKS key for ``kid``, which must be of the type ``alg`` needs."""
        try:
            key = self._jwks.key(kid)
        except Unauthenticated:
            key = None
        if key is None:
            raise _Rejected("unknown_kid")
        try:
            expected = algorithm_for(key)
        except ValueError:
            expected = ""
        if expected != alg:
            raise _Rejected("alg_key_mismatch")
        return key

    def _check_issuer_and_audience(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self._issuer:
            raise _Rejected("wrong_issuer")
        aud = claims.get("aud")
        if isinstance(aud, str):
            ok = aud == self._audience
        else:
            ok = (isinstance(aud, list) and all(isinstance(a, str) for a in aud)
                  and self._audience in aud)
        if not ok:
            raise _Rejected("wrong_audience")

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now().timestamp()
        if "exp" not in claims:
            raise _Rejected("missing_exp")
        if now >= _number(claims["exp"], "exp") + self._leeway:
            raise _Rejected("expired")
        if "nbf" in claims and _number(claims["nbf"], "nbf") > now + self._leeway:
            raise _Rejected("not_yet_valid")
        if "iat" in claims and _number(claims["iat"], "iat") > now + self._leeway:
            raise _Rejected("issued_in_future")

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        user = _identifier(claims.get("sub"), "sub")
        tenant = _identifier(claims.get(self._tenant_claim), "tenant")
        role = claims.get(self._role_claim)
        if role not in ROLES:
            raise _Rejected("invalid_role")
        return Principal(tenant=tenant, user=user, role=cast(Role, role),
                         scopes=_scopes(claims))


def _bearer_token(header: str | None) -> str:
    if not header:
        raise _Rejected("missing_header")
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise _Rejected("not_bearer")
    token = parts[1]
    if len(token) > MAX_TOKEN_CHARS or not _JWS_RE.match(token):
        raise _Rejected("malformed_token")
    return token


def _trusted_shape(token: str) -> tuple[str, str]:
    """``(alg, kid)`` from the unverified JOSE header, after the allow-list checks."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise _Rejected("malformed_header")
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise _Rejected("algorithm_not_allowed")
    if "crit" in header or "b64" in header:
        raise _Rejected("critical_header")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise _Rejected("missing_kid")
    return alg, kid


def _signed_claims(token: str, key: Any, alg: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, key=key, algorithms=[alg], options=_SIGNATURE_ONLY)
    except jwt.InvalidSignatureError:
        claims = "bad_signature"
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        claims = "malformed_payload"
    if isinstance(claims, str):
        raise _Rejected(claims)
    if not isinstance(claims, dict):
        raise _Rejected("malformed_payload")
    return claims


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Rejected(f"invalid_{name}")
    return float(value)


def _identifier(value: Any, name: str) -> str:
    if not is_identifier(value):
        raise _Rejected(f"invalid_{name}")
    return cast(str, value)


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    granted: set[str] = set()
    scope = claims.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise _Rejected("invalid_scope")
        granted.update(scope.split())
    permissions = claims.get("permissions")
    if permissions is not None:
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise _Rejected("invalid_permissions")
        granted.update(permissions)
    return frozenset(granted.intersection(SCOPES))
