"""Where the verifier gets public keys: a JSON Web Key Set, by key id (``kid``).

* :class:`HttpJwks` — the issuer's JWKS over HTTP(S) (Auth0 in production): fetched with
  timeouts, no redirects and a size cap; cached for ``ttl`` seconds; an unknown ``kid`` triggers
  a refetch (the issuer rotated its keys) at most once per ``min_refetch_interval`` seconds, so
  tokens with random ``kid`` values cannot make us hammer the issuer; when a fetch fails the
  cached keys keep serving.
* :class:`StaticJwks` — a fixed set, e.g. the local issuer's.

Only RSA keys of at least 2048 bits (RS256) and EC P-256 keys (ES256) are accepted; any other
entry (symmetric, other curves, encryption keys, private material, no ``kid``) is ignored.
Every lookup that finds no key raises :class:`~shared.auth.principal.Unauthenticated`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from shared.auth.principal import Unauthenticated
from shared.log import get_logger

if TYPE_CHECKING:
    from shared.ports import Clock

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1 << 20
_log = get_logger(__name__)


class JwksSource(Protocol):
    def key(self, kid: str) -> PublicKey:
        """The public key with this ``kid``; raises ``Unauthenticated`` when there is none."""


def algorithm_for(key: PublicKey) -> str:
    """The one JWS algorithm a key may verify: RS256 for RSA, ES256 for EC P-256."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("unsupported key type")


def parse_jwks(document: Any) -> dict[str, PublicKey]:
    """The usable signing keys of a JWKS document, by ``kid``.

    Raises ``ValueError`` when the document is not a JWKS (an object with a ``keys`` list);
    unusable entries inside a valid document are skipped.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, PublicKey] = {}
    for entry in document["keys"]:
        parsed = _parse_jwk(entry)
        if parsed is not None:
            keys[parsed[0]] = parsed[1]
    return keys


def _parse_jwk(entry: Any) -> tuple[str, PublicKey] | None:
    if not isinstance(entry, Mapping):
        return None
    kid, kty = entry.get("kid"), entry.get("kty")
    if not isinstance(kid, str) or not kid or "d" in entry or entry.get("use", "sig") != "sig":
        return None
    try:
        if kty == "RSA" and entry.get("alg", "RS256") == "RS256":
            key = RSAAlgorithm.from_jwk(dict(entry))
            if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
                return kid, key
        elif (kty == "EC" and entry.get("crv") == "P-256"
              and entry.get("alg", "ES256") == "ES256"):
            key = ECAlgorithm.from_jwk(dict(entry))
            if isinstance(key, ec.EllipticCurvePublicKey):
                return kid, key
    except (InvalidKeyError, ValueError, TypeError, KeyError):
        pass
    return None


class StaticJwks:
    """A fixed key set (the local issuer's JWKS), parsed once."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = parse_jwks(jwks)

    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def key(self, kid: str) -> PublicKey:
        try:
            return self._keys[kid]
        except KeyError:
            pass
        raise Unauthenticated("invalid bearer token")


class HttpJwks:
    """An issuer's JWKS over HTTP(S), cached, refetched on expiry or an unknown ``kid``.

    Thread-safe: one lock guards the cache and serialises fetches, so concurrent requests
    with the same unknown ``kid`` cause one fetch, not many.
    """

    def __init__(self, url: str, session: requests.Session, clock: Clock, ttl: float = 600,
                 min_refetch_interval: float = 30, *, timeout: float = 5.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the JWKS URL must be http(s)")
        self._url, self._session, self._clock = url, session, clock
        self._ttl, self._min_interval, self._timeout = ttl, min_refetch_interval, timeout
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None  # monotonic time of the last successful fetch
        self._attempted_at: float | None = None  # monotonic time of the last fetch attempt
        self._lock = threading.Lock()

    def key(self, kid: str) -> PublicKey:
        with self._lock:
            if not self._fresh() or kid not in self._keys:
                self._maybe_refresh()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("invalid bearer token")
        return key

    def _fresh(self) -> bool:
        return (self._fetched_at is not None
                and self._clock.monotonic() - self._fetched_at < self._ttl)

    def _maybe_refresh(self) -> None:
        now = self._clock.monotonic()
        if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
            return  # rate-limited: keep serving what we have
        self._attempted_at = now
        keys = self._fetch()
        if keys is not None:
            self._keys, self._fetched_at = keys, now
            _log.info("auth.jwks_fetched", extra={"fields": {"keys": len(keys)}})

    def _fetch(self) -> dict[str, PublicKey] | None:
        """The parsed key set, or None (logged) when the issuer could not be read."""
        reason = ""
        try:
            with self._session.get(self._url, timeout=self._timeout, allow_redirects=False,
                                   stream=True, headers={"Accept": "application/json"}) as resp:
                body = _read_capped(resp) if resp.status_code == 200 else None
                if resp.status_code != 200:
                    reason = f"http_{resp.status_code}"
                elif body is None:
                    reason = "too_large"
                else:
                    return parse_jwks(json.loads(body))
        except requests.RequestException:
            reason = "network"
        except (ValueError, RecursionError):
            reason = "invalid_document"
        _log.warning("auth.jwks_fetch_failed",
                     extra={"fields": {"reason": reason, "cached_keys": len(self._keys)}})
        return None


def _read_capped(response: requests.Response) -> bytes | None:
    """The body, or None when it is larger than :data:`MAX_JWKS_BYTES`."""
    body = bytearray()
    for chunk in response.iter_content(chunk_size=65536):
        body += chunk
        if len(body) > MAX_JWKS_BYTES:
            return None
    return bytes(body)
