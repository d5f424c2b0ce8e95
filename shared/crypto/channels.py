"""Channel keys: one 256-bit AES key per (vault-P, recipient) pair (DESIGN.md promise 3).

A vault pushes a token to exactly one recipient inside a sealed envelope
(:mod:`shared.crypto.seal`). The envelope is encrypted under the key of the channel from that
vault to that recipient, so only the two ends of the channel can read it:

* the allowed channels are derived from :data:`shared.policy.PROVIDERS` — for each provider P,
  only ``vault-P → fetch-P`` (app tokens, purpose ``fetch``) and ``vault-P → act-P`` (personal
  tokens, purpose ``action``); every other pair is a :class:`~shared.errors.PolicyViolation`;
* each key is 32 random bytes stored in the :class:`~shared.ports.SecretSource` under
  ``channel-<vault-P>-to-<recipient>`` (e.g. ``channel-vault-github-to-fetch-github``). In GCP
  the secret's IAM grants ``secretAccessor`` to exactly those two service accounts (Terraform).
  Locally :func:`ensure` creates the missing ones at first start (``keyway/firststart.py``).
  The value is the raw 32 bytes (not hex), so it lives in the secrets file rather than in a
  ``KEYWAY_SECRET_*`` variable.

:class:`ChannelKeys` reads and caches keys for the life of the process; it has no key material
in its ``repr`` and refuses to be pickled. A rotated channel key is picked up by new instances.
"""

from __future__ import annotations

import secrets as _random
import threading
from typing import Any, NoReturn

from shared.errors import CryptoError, NotFound, PolicyViolation
from shared.policy import PROVIDERS
from shared.ports import SecretSource

KEY_BYTES = 32
RECIPIENT_KINDS: tuple[str, ...] = ("fetch", "act")

ALLOWED_CHANNELS: frozenset[tuple[str, str]] = frozenset(
    (f"vault-{p}", f"{kind}-{p}") for p in PROVIDERS for kind in RECIPIENT_KINDS
)
"""Every (sender, recipient) pair that has a channel key: vault-P → fetch-P and vault-P → act-P."""


def secret_name(sender: str, recipient: str) -> str:
    """The secret holding the key of ``sender → recipient`` (the pair is not checked here)."""
    return f"channel-{sender}-to-{recipient}"


def check_channel(sender: str, recipient: str) -> None:
    """Raise ``PolicyViolation`` unless ``sender → recipient`` is an allowed channel."""
    if (sender, recipient) not in ALLOWED_CHANNELS:
        raise PolicyViolation(
            f"no channel from {sender} to {recipient}", key="policy.channel_refused"
        )


def sender_for(recipient: str) -> str:
    """The only component that may seal for ``recipient`` (``fetch-github`` → ``vault-github``).

    A component that is not a channel recipient → ``PolicyViolation``.
    """
    for sender, allowed in ALLOWED_CHANNELS:
        if allowed == recipient:
            return sender
    raise PolicyViolation(f"{recipient} receives no sealed envelopes", key="policy.channel_refused")


class ChannelKeys:
    """Channel keys read from a secret source and cached in memory for the process."""

    def __init__(self, secrets: SecretSource) -> None:
        self._secrets = secrets
        self._cache: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ChannelKeys(cached={len(self._cache)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("ChannelKeys holds key material and cannot be pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("ChannelKeys holds key material and cannot be pickled")

    def key(self, sender: str, recipient: str) -> bytes:
        """The 32-byte key of ``sender → recipient``.

        Errors: pair not allowed → ``PolicyViolation``; secret missing → ``NotFound`` naming
        the secret; stored value not 32 bytes → ``CryptoError``; secret source down →
        ``UnavailableError`` (nothing is cached then).
        """
        check_channel(sender, recipient)
        pair = (sender, recipient)
        with self._lock:
            cached = self._cache.get(pair)
        if cached is not None:
            return cached
        name = secret_name(sender, recipient)
        try:
            value = self._secrets.access(name)
        except NotFound as e:
            raise NotFound(f"channel key secret {name!r} is missing",
                           key="channel.key_missing") from e
        if not isinstance(value, bytes) or len(value) != KEY_BYTES:
            raise CryptoError()
        with self._lock:
            return self._cache.setdefault(pair, value)


def ensure(secrets: SecretSource) -> list[str]:
    """Create every allowed channel key that is missing (32 random bytes); return the names.

    Idempotent: an existing key is never replaced, so a second call returns ``[]``.
    """
    created: list[str] = []
    for sender, recipient in sorted(ALLOWED_CHANNELS):
        name = secret_name(sender, recipient)
        try:
            secrets.access(name)
        except NotFound:
            secrets.add_version(name, _random.token_bytes(KEY_BYTES))
            created.append(name)
    return created
