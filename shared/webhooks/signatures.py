"""Signature checks, constant-time, over the raw request bytes.

* :func:`hmac_hex` — GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``;
  Bitbucket Cloud (since 2023) and Jira Cloud (webhooks registered with a ``secret``) the same
  value in ``X-Hub-Signature``.
* :func:`token` — GitLab: ``X-Gitlab-Token`` is the secret itself.
* :func:`standard` — GitLab's signed format (Standard Webhooks): ``webhook-signature`` holds
  one or more space-separated ``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.
  <body>">``; a secret written ``whsec_<base64>`` is base64-decoded into the key, any other
  value is the key as is. :func:`fresh` applies the 5-minute tolerance to the timestamp.
* :func:`jwt_claims` — Jira's dynamic webhooks of an OAuth 2.0 app: ``Authorization: Bearer
  <JWT>`` signed with the app's OAuth client secret. Only ``HS256`` is accepted (the header's
  ``alg``; ``none`` and every other algorithm are refused before any key is used), the
  signature must verify under one secret, and ``exp`` and ``iat`` must be present as numbers;
  :func:`jwt_refusal` then bounds them: a lifetime ``exp - iat`` of at most
  :data:`JWT_MAX_LIFETIME_SECONDS` (a token minted for one delivery, not a reusable credential),
  ``iat`` no older than :data:`JWT_MAX_AGE_SECONDS` and now within ``iat``..``exp``, each give
  or take :data:`JWT_LEEWAY_SECONDS` of clock skew. No other claim is checked: Atlassian
  documents none (not ``iss``, ``aud`` or ``qsh``), and a signature under keyway's own client
  secret already binds the token to keyway's app. The token does not cover the body — it
  authenticates the sender, TLS protects the request; its age bounds a replay.

Every candidate secret (current, previous) is tried with :func:`hmac.compare_digest`; none of
these functions logs, raises with, or returns a secret or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

TOLERANCE_SECONDS = 300
JWT_LEEWAY_SECONDS = 60
JWT_MAX_LIFETIME_SECONDS = 3600
JWT_MAX_AGE_SECONDS = 300
JWT_ALGORITHM = "HS256"
_SIGNING_PREFIX = b"whsec_"
_MAX_TOKEN = 8192
_JWT_OPTIONS = {"verify_signature": True, "verify_exp": False, "verify_iat": False,
                "verify_nbf": False, "verify_aud": False, "verify_iss": False,
                "require": ["exp", "iat"]}


def _ascii(value: str) -> bytes:
    return value.encode("utf-8", "replace")


def hmac_hex(body: bytes, header: str, prefix: str, secrets: Iterable[bytes]) -> bool:
    """True if ``header`` is ``prefix`` + the hex HMAC-SHA256 of ``body`` under one secret."""
    given = _ascii(header)
    results = [hmac.compare_digest(
        _ascii(prefix + hmac.new(secret, body, hashlib.sha256).hexdigest()), given)
        for secret in secrets]
    return any(results)


def token(header: str, secrets: Iterable[bytes]) -> bool:
    """True if ``header`` equals one of the secrets."""
    given = _ascii(header)
    return any([hmac.compare_digest(secret, given) for secret in secrets])


def signing_key(secret: bytes) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_<base64>`` decoded, else as is)."""
    if secret.startswith(_SIGNING_PREFIX):
        try:
            return base64.b64decode(secret[len(_SIGNING_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            return secret
    return secret


def standard(body: bytes, message_id: str, timestamp: str, header: str,
             secrets: Iterable[bytes]) -> bool:
    """True if one ``v1,<base64>`` entry of ``header`` signs ``id.timestamp.body``."""
    signed = _ascii(f"{message_id}.{timestamp}.") + body
    given = [_ascii(part[3:]) for part in header.split() if part.startswith("v1,")]
    results = []
    for secret in secrets:
        digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
        expected = base64.b64encode(digest)
        results += [hmac.compare_digest(expected, candidate) for candidate in given]
    return any(results)


def fresh(timestamp: str, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """True if ``timestamp`` (integer Unix seconds) is within ``tolerance`` of ``now``."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= tolerance


def jwt_claims(token: str, secrets: Iterable[bytes]) -> dict[str, Any] | None:
    """The claims of ``token`` if it is an HS256 JWT whose signature verifies under one of
    ``secrets`` and that carries numeric ``exp`` and ``iat``; None otherwise."""
    import jwt  # only Jira's app-level path needs PyJWT: the other webhook functions skip it

    if not token or len(token) > _MAX_TOKEN or not token.isascii():
        return None
    try:
        if jwt.get_unverified_header(token).get("alg") != JWT_ALGORITHM:
            return None  # "none", HS512, RS256…: refused before any key is tried
    except jwt.InvalidTokenError:
        return None
    found = None
    for secret in secrets:
        try:
            claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options=_JWT_OPTIONS)
        except jwt.InvalidTokenError:
            continue
        found = found or claims
    if found is None or not all(_number(found.get(c)) for c in ("exp", "iat")):
        return None
    return found


def jwt_refusal(claims: Mapping[str, Any], now: float,
                leeway: int = JWT_LEEWAY_SECONDS) -> str | None:
    """Why the verified ``claims`` may not be used at ``now``, or None if they may:
    ``token_lifetime`` if ``exp - iat`` is negative or above :data:`JWT_MAX_LIFETIME_SECONDS`;
    ``stale_timestamp`` if ``iat`` is more than :data:`JWT_MAX_AGE_SECONDS` in the past or
    ``now`` lies outside ``iat``..``exp`` (each give or take ``leeway``)."""
    issued, expires = claims["iat"], claims["exp"]
    if not 0 <= expires - issued <= JWT_MAX_LIFETIME_SECONDS:
        return "token_lifetime"
    if now - issued > JWT_MAX_AGE_SECONDS + leeway:
        return "stale_timestamp"
    if not issued - leeway <= now < expires + leeway:
        return "stale_timestamp"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
