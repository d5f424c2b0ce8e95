"""Private: random 96-bit IVs for field encryption, read from the OS a block at a time.

``os.urandom(12)`` per encryption is a system call: on a 40-byte token it costs about as much
as a third of the AES-GCM call itself. :func:`take` hands out IVs from one ``os.urandom``
read of :data:`BLOCK` IVs, each exactly once:

* ``next()`` on the block's iterator runs in C without releasing the GIL, so two threads never
  receive the same IV; an exhausted block is replaced by a fresh read (threads racing to
  replace it each read their own block, and nothing is handed out twice);
* a forked child drops the block it inherited (:func:`os.register_at_fork`) before it can
  draw from it, so a parent and its child never share an IV;
* IVs are public (each is written into its ciphertext) and GCM needs them unique, not
  secret: holding the next few in memory gives nothing away.

Use: ``iv = next(CURRENT[0], None) or refill()`` (inline on the hot path), or :func:`take`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from shared.crypto._aead import IV_SIZE

BLOCK = 256  # IVs per os.urandom read (3 KiB)
CURRENT: list[Iterator[bytes]] = [iter(())]  # one slot, replaced whole


def refill() -> bytes:
    """Start a fresh block and return its first IV."""
    raw = os.urandom(IV_SIZE * BLOCK)
    block = iter([raw[i:i + IV_SIZE] for i in range(0, len(raw), IV_SIZE)])
    iv = next(block)
    CURRENT[0] = block
    return iv


def take() -> bytes:
    """One IV never handed out before in this process."""
    return next(CURRENT[0], None) or refill()


def _drop_inherited() -> None:
    CURRENT[0] = iter(())


os.register_at_fork(after_in_child=_drop_inherited)
