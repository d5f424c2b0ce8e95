"""The local-mode token issuer: what ``keyway dev token`` uses to mint bearer JWTs for ``api``.

It signs ES256 (EC P-256) tokens with a key generated on first use and kept as PKCS#8 PEM in
``<state_dir>/issuer/`` (directory 0700, key files 0600)::

    current.pem    the signing key
    previous.pem   the key before the last :meth:`LocalIssuer.rotate` (verification only)

Key ids are RFC 7638 thumbprints of the public keys, so nothing but the keys is stored. The
JWKS (:meth:`LocalIssuer.jwks`) lists the current and the previous public key; tokens verify
with ``TokenVerifier(issuer, audience, StaticJwks(local_issuer.jwks()), ...)`` or with
``HttpJwks`` pointed at wherever the local stack serves that document.

Keys are read from disk on every call, so a rotation by one process (the CLI) is seen by the
others (the local stack). First-use creation is race-free across processes (write to a temporary
file, then hard-link into place). Tokens are returned, never logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from shared.auth.principal import ROLES, SCOPES, is_identifier
from shared.errors import ConfigError, InvalidInput
from shared.log import get_logger

if TYPE_CHECKING:
    from shared.ports import Clock

ALGORITHM = "ES256"
CURRENT, PREVIOUS = "current.pem", "previous.pem"
MAX_TTL = 86400
_log = get_logger(__name__)


class LocalIssuer:
    """Mints and publishes local-mode tokens; see the module docstring."""

    def __init__(self, state_dir: Path | str, issuer: str, audience: str, clock: Clock,
                 tenant_claim: str, role_claim: str) -> None:
        self.key_dir = Path(state_dir) / "issuer"
        self.issuer, self.audience, self._clock = issuer, audience, clock
        self._tenant_claim, self._role_claim = tenant_claim, role_claim

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: the current key first, then the previous one if there is one."""
        keys = [self._current()]
        previous = _load(self.key_dir / PREVIOUS)
        if previous is not None:
            keys.append(previous)
        return {"keys": [public_jwk(key) for key in keys]}

    def current_kid(self) -> str:
        return kid_of(self._current())

    def issue(self, tenant: str, user: str, role: str, scopes: Iterable[str] = SCOPES,
              ttl: int = 3600) -> str:
        """A signed bearer token for ``user`` of ``tenant``; raises ``InvalidInput`` for an
        unknown role or scope, a malformed id or a ttl outside 1..86400 seconds."""
        granted = _validate(tenant, user, role, scopes, ttl)
        key = self._current()
        kid = kid_of(key)
        now = int(self._clock.now().timestamp())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": user,
            self._tenant_claim: tenant, self._role_claim: role,
            "scope": " ".join(sorted(granted)),
            "iat": now, "nbf": now, "exp": now + ttl, "jti": secrets.token_hex(16),
        }
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})
        _log.info("auth.local_token_issued", extra={"fields": {
            "tenant": tenant, "user": user, "role": role, "kid": kid, "ttl": ttl}})
        return token

    def rotate(self) -> str:
        """Make a new signing key; the old one stays in the JWKS as the previous key (and the
        one before it is dropped). Returns the new key id."""
        old = self._current()
        new = ec.generate_private_key(ec.SECP256R1())
        staged_new = _stage(self.key_dir, _pem(new))
        staged_old = _stage(self.key_dir, _pem(old))
        # The current key never goes missing: previous is replaced first, then current.
        os.replace(staged_old, self.key_dir / PREVIOUS)
        os.replace(staged_new, self.key_dir / CURRENT)
        kid = kid_of(new)
        _log.info("auth.local_issuer_rotated", extra={"fields": {"kid": kid,
                                                                  "previous": kid_of(old)}})
        return kid

    def _current(self) -> ec.EllipticCurvePrivateKey:
        _ensure_dir(self.key_dir)
        path = self.key_dir / CURRENT
        key = _load(path)
        if key is None:
            staged = _stage(self.key_dir, _pem(ec.generate_private_key(ec.SECP256R1())))
            try:
                os.link(staged, path)  # atomic create-if-absent: a concurrent creator wins
            except FileExistsError:
                pass
            finally:
                staged.unlink()
            key = _load(path)
            if key is None:
                raise ConfigError(f"could not create the local issuer key in {self.key_dir}")
            _log.info("auth.local_issuer_key_created", extra={"fields": {"kid": kid_of(key)}})
        return key


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The public half of ``key`` as a JWK with ``kid``, ``use`` and ``alg``."""
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid_of(key), "use": "sig", "alg": ALGORITHM}


def kid_of(key: ec.EllipticCurvePrivateKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key."""
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")},
                           separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _validate(tenant: str, user: str, role: str, scopes: Iterable[str], ttl: int) -> set[str]:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", key="auth.invalid_role")
    if not is_identifier(tenant) or not is_identifier(user):
        raise InvalidInput("tenant and user must be 1-256 characters without whitespace",
                           key="auth.invalid_identifier")
    if isinstance(scopes, str):
        raise InvalidInput("scopes must be a collection of scope names, not one string",
                           key="auth.invalid_scope")
    granted = set(scopes)
    unknown = granted.difference(SCOPES)
    if unknown:
        raise InvalidInput(f"unknown scopes {sorted(map(str, unknown))}; known: "
                           f"{', '.join(SCOPES)}", key="auth.invalid_scope")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise InvalidInput(f"ttl must be 1..{MAX_TTL} seconds", key="auth.invalid_ttl")
    return granted


def _ensure_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _stage(directory: Path, data: bytes) -> Path:
    """``data`` in a new 0600 file in ``directory`` (flushed to disk); returns its path."""
    path = directory / f".staged-{secrets.token_hex(8)}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return path


def _load(path: Path) -> ec.EllipticCurvePrivateKey | None:
    """The key in ``path`` (its mode tightened to 0600), or None when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve,
                                                                        ec.SECP256R1):
        raise ConfigError(f"{path} is not an EC P-256 private key in PEM")
    return key
