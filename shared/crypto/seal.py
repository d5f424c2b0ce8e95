"""Sealed push envelopes: how a vault hands a token to exactly one recipient (promise 3).

Format (JSON-safe; travels inside ``fetch-jobs-P`` / ``action-jobs-P`` messages)::

    {"v": 1,
     "claims": {"issuer": "vault-github", "audience": "fetch-github", "purpose": "fetch",
                "connection": "c-123", "user": null, "expires_at": 1735689900,
                "nonce": "<32 lowercase hex>"},
     "ct": base64url-without-padding(iv[12] | AES-256-GCM ciphertext | tag[16])}

* Key: the channel key of ``issuer → audience`` (:mod:`shared.crypto.channels`), known only to
  that vault and that recipient.
* IV: 96 fresh random bits per envelope.
* Associated data: :func:`associated_data` — compact, sorted-key, ASCII JSON of the version and
  ALL claims. Changing any claim (audience, purpose, connection, user, expiry, nonce, issuer)
  makes decryption fail, so the claims can be read in clear yet not altered.
* Purposes: ``fetch`` carries an app token to ``fetch-P``; ``action`` carries a personal token
  (with its ``user``) to ``act-P`` (promise 4). Lifetime: 1 to 300 seconds.

:func:`open_envelope` checks, in this order:

1. structure (keys, types, nonce format, base64url, sizes) → opaque ``CryptoError``;
2. decrypt and authenticate under the recipient's channel key → opaque ``CryptoError``
   (tampered claims or ciphertext, wrong key, truncation);
3. audience → ``envelope.wrong_audience``; issuer is the vault of the audience's provider →
   ``envelope.wrong_issuer``; purpose → ``envelope.wrong_purpose``;
4. expiry: ``now > expires_at`` → ``envelope.expired``; ``expires_at`` more than
   300 s + 30 s skew after ``now`` → ``envelope.expiry_too_far``;
5. only then the nonce is claimed in the :class:`~shared.crypto.replay.ReplayGuard` →
   ``envelope.replayed`` if already seen. A forged or stale envelope therefore never burns the
   nonce of the genuine one.

Rejections (3-5) are :class:`EnvelopeRejected` subclasses (permanent: the message is logged by
its stable key and acknowledged). No error message ever contains the token. The plaintext
returned by :func:`open_envelope` is a token: keep it in memory only, never log it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import secrets
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.channels import KEY_BYTES, check_channel, sender_for
from shared.crypto.replay import ReplayGuard, is_valid_nonce
from shared.errors import CryptoError, InvalidInput, PermanentError

VERSION = 1
MAX_TTL_SECONDS = 300
CLOCK_SKEW_SECONDS = 30
MAX_PLAINTEXT = 64 * 1024
IV_BYTES = 12
TAG_BYTES = 16
PURPOSES: tuple[str, ...] = ("fetch", "action")
_PURPOSE_OF_KIND = {"fetch": "fetch", "act": "action"}
_MAX_ID = 512
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class EnvelopeRejected(PermanentError):
    """An authentic envelope that this recipient must not use. Never carries the token."""

    status, key, title = 403, "envelope.rejected", "Envelope rejected"


class WrongAudience(EnvelopeRejected):
    key, title = "envelope.wrong_audience", "Envelope is addressed to another component"


class WrongIssuer(EnvelopeRejected):
    key, title = "envelope.wrong_issuer", "Envelope was not issued by the audience's vault"


class WrongPurpose(EnvelopeRejected):
    key, title = "envelope.wrong_purpose", "Envelope was sealed for another purpose"


class EnvelopeExpired(EnvelopeRejected):
    key, title = "envelope.expired", "Envelope has expired"


class ExpiryTooFar(EnvelopeRejected):
    key, title = "envelope.expiry_too_far", "Envelope expiry is too far in the future"


class EnvelopeReplayed(EnvelopeRejected):
    key, title = "envelope.replayed", "Envelope was already opened"


@dataclass(frozen=True)
class Claims:
    """What an envelope says about itself; all of it is bound as associated data."""

    issuer: str
    audience: str
    purpose: Literal["fetch", "action"]
    connection: str
    user: str | None
    expires_at: int  # unix seconds
    nonce: str  # 32 lowercase hex characters

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_CLAIM_FIELDS = frozenset(f.name for f in fields(Claims))


def associated_data(claims: Claims) -> bytes:
    """The canonical AD: compact sorted-key ASCII JSON of ``{"v": 1, "claims": {...}}``."""
    document = {"v": VERSION, "claims": claims.as_dict()}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def new_claims(
    issuer: str,
    audience: str,
    purpose: str,
    connection: str,
    user: str | None,
    now: datetime,
    ttl_seconds: int = MAX_TTL_SECONDS,
    nonce: str | None = None,
) -> Claims:
    """Claims for one push, expiring ``ttl_seconds`` (1..300) after ``now``, random nonce.

    Errors: ttl out of range, naive ``now``, bad ids or nonce, purpose not the audience's
    (``fetch`` for fetch-P, ``action`` for act-P), action without user → ``InvalidInput``;
    ``issuer → audience`` not an allowed channel → ``PolicyViolation``.
    """
    if type(ttl_seconds) is not int or not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInput(f"ttl_seconds must be 1..{MAX_TTL_SECONDS}")
    claims = Claims(
        issuer=issuer,
        audience=audience,
        purpose=purpose,  # type: ignore[arg-type]  # validated below
        connection=connection,
        user=user,
        expires_at=math.floor(_unix(now)) + ttl_seconds,
        nonce=secrets.token_hex(16) if nonce is None else nonce,
    )
    _validate_for_sealing(claims)
    return claims


def seal(key: bytes, claims: Claims, plaintext: bytes) -> dict[str, Any]:
    """Encrypt ``plaintext`` (the token) for ``claims.audience``; returns the envelope dict.

    Errors: invalid claims or empty/oversized plaintext → ``InvalidInput``; disallowed channel
    → ``PolicyViolation``; key not 32 bytes → ``CryptoError``.
    """
    _validate_for_sealing(claims)
    if not isinstance(plaintext, bytes) or not 0 < len(plaintext) <= MAX_PLAINTEXT:
        raise InvalidInput(f"plaintext must be 1 to {MAX_PLAINTEXT} bytes")
    iv = os.urandom(IV_BYTES)
    ciphertext = _aead(key).encrypt(iv, plaintext, associated_data(claims))
    ct = base64.urlsafe_b64encode(iv + ciphertext).rstrip(b"=").decode("ascii")
    return {"v": VERSION, "claims": claims.as_dict(), "ct": ct}


def open_envelope(
    key: bytes,
    envelope: dict[str, Any],
    *,
    audience: str,
    purpose: str,
    now: datetime,
    replay: ReplayGuard,
) -> tuple[Claims, bytes]:
    """Authenticate, check and claim an envelope; return its claims and plaintext token.

    The checks and their order are in the module docstring. ``audience`` is the calling
    component and ``purpose`` what it expects (``fetch`` or ``action``).
    """
    if purpose not in PURPOSES:
        raise InvalidInput("purpose must be 'fetch' or 'action'")
    now_seconds = _unix(now)
    claims, raw = _parse(envelope)
    try:
        plaintext = _aead(key).decrypt(raw[:IV_BYTES], raw[IV_BYTES:], associated_data(claims))
    except InvalidTag:
        raise CryptoError() from None
    _check_addressing(claims, audience, purpose)
    _check_expiry(claims, now_seconds)
    if not replay.claim(claims.nonce, claims.expires_at):
        raise EnvelopeReplayed("envelope nonce was already used")
    return claims, plaintext


# ---- checks -----------------------------------------------------------------------------
def _check_addressing(claims: Claims, audience: str, purpose: str) -> None:
    if claims.audience != audience:
        raise WrongAudience(f"envelope is not addressed to {audience}")
    if claims.issuer != sender_for(audience):
        raise WrongIssuer(f"envelope for {audience} was not issued by its vault")
    if claims.purpose != purpose:
        raise WrongPurpose(f"{audience} expected purpose {purpose}")


def _check_expiry(claims: Claims, now_seconds: float) -> None:
    if now_seconds > claims.expires_at:
        raise EnvelopeExpired("envelope has expired")
    if claims.expires_at - now_seconds > MAX_TTL_SECONDS + CLOCK_SKEW_SECONDS:
        raise ExpiryTooFar(f"envelope expiry is more than {MAX_TTL_SECONDS}s ahead")


def _validate_for_sealing(claims: Claims) -> None:
    """What a vault may seal: well-formed claims on an allowed channel, purpose matching."""
    if not isinstance(claims, Claims) or _claims_problem(claims.as_dict()):
        raise InvalidInput("claims are malformed")
    check_channel(claims.issuer, claims.audience)
    kind = claims.audience.split("-", 1)[0]
    if _PURPOSE_OF_KIND.get(kind) != claims.purpose:
        raise InvalidInput(f"purpose {claims.purpose} cannot be sent to {claims.audience}")
    if claims.purpose == "action" and claims.user is None:
        raise InvalidInput("an action envelope must name its user")


def _claims_problem(data: Any) -> bool:
    """True unless ``data`` has exactly the claim fields with well-formed values."""
    if not isinstance(data, dict) or set(data) != _CLAIM_FIELDS:
        return True
    texts = [data[name] for name in ("issuer", "audience", "connection")]
    if data["user"] is not None:
        texts.append(data["user"])
    return (
        not all(isinstance(t, str) and 0 < len(t) <= _MAX_ID for t in texts)
        or data["purpose"] not in PURPOSES
        or type(data["expires_at"]) is not int
        or not 0 <= data["expires_at"] < 2**53
        or not is_valid_nonce(data["nonce"])
    )


def _parse(envelope: Any) -> tuple[Claims, bytes]:
    """Structure check: the claims and ``iv | ciphertext | tag``; anything off → CryptoError."""
    if (
        not isinstance(envelope, dict)
        or set(envelope) != {"v", "claims", "ct"}
        or type(envelope["v"]) is not int
        or envelope["v"] != VERSION
        or _claims_problem(envelope["claims"])
    ):
        raise CryptoError()
    raw = _unbase64url(envelope["ct"])
    if not IV_BYTES + TAG_BYTES < len(raw) <= IV_BYTES + MAX_PLAINTEXT + TAG_BYTES:
        raise CryptoError()
    return Claims(**envelope["claims"]), raw


def _unbase64url(text: Any) -> bytes:
    """Strict unpadded base64url (the canonical encoding only) → bytes, else CryptoError."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise CryptoError()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CryptoError() from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise CryptoError()
    return raw


def _aead(key: Any) -> AESGCM:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise CryptoError()
    return AESGCM(key)


def _unix(now: datetime) -> float:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidInput("now must be a timezone-aware datetime")
    return now.timestamp()
