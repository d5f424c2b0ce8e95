"""How ``fetch-P`` and ``act-P`` open what their vault pushed them.

The envelope is authenticated under the channel key shared only by ``vault-P`` and this
recipient, then checked for audience, purpose, issuer, expiry and replay (nonces are claimed
in the business store). The returned token lives only in the caller's memory.
"""

from __future__ import annotations

import weakref
from typing import Any

from shared.crypto.channels import ChannelKeys, sender_for
from shared.crypto.replay import ReplayGuard
from shared.crypto.seal import Claims, open_envelope
from shared.ports import Ports

# One ChannelKeys per secret source and instance: it caches the channel key, so a fetch or
# action job does not read Secret Manager again (the vault keeps its own the same way).
_CHANNELS: weakref.WeakKeyDictionary[Any, ChannelKeys] = weakref.WeakKeyDictionary()


def _channels(ports: Ports) -> ChannelKeys:
    channels = _CHANNELS.get(ports.secrets)
    if channels is None:
        channels = _CHANNELS[ports.secrets] = ChannelKeys(ports.secrets)
    return channels


def open_pushed_token(ports: Ports, recipient: str, envelope: dict[str, Any],
                      purpose: str) -> tuple[Claims, str]:
    key = _channels(ports).key(sender_for(recipient), recipient)
    claims, plaintext = open_envelope(key, envelope, audience=recipient, purpose=purpose,
                                      now=ports.clock.now(),
                                      replay=ReplayGuard(ports.business, ports.clock))
    return claims, plaintext.decode()
