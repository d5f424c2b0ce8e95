"""First start of a local stack: state directory, KMS keys and generated local secrets.

Created: a KMS key per token component (``vault-P``, wrapping its data keys); one webhook
secret per provider; one channel key per allowed ``vault-P → fetch-P`` / ``vault-P → act-P``
pair (:func:`shared.crypto.channels.ensure`); the audit chain key (``audit-chain-key``), made
here once so concurrent first appends cannot race to create two.

Idempotent: each step checks before it creates, so every ``make run`` may call it.
"""

from __future__ import annotations

import secrets

from shared import audit, policy
from shared.crypto import channels
from shared.errors import NotFound
from shared.ports import Ports


def ensure_local_state(ports: Ports) -> list[str]:
    """Create what a fresh state directory lacks; returns what was created (names only)."""
    created: list[str] = []
    for provider in policy.PROVIDERS:
        ports.keys.ensure_key(f"vault-{provider}")
        name = f"{provider}-webhook-secret"
        try:
            ports.secrets.access(name)
        except NotFound:
            ports.secrets.add_version(name, secrets.token_hex(32).encode())
            created.append(name)
    created += channels.ensure(ports.secrets)
    try:
        ports.secrets.access(audit.KEY_SECRET)
    except NotFound:
        ports.secrets.add_version(audit.KEY_SECRET, secrets.token_bytes(32))
        created.append(audit.KEY_SECRET)
    return created
