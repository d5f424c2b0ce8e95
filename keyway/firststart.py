"""First start of a local stack: state directory, KMS keys and generated local secrets.

Idempotent: each step checks before it creates, so every ``make run`` may call it.
"""

from __future__ import annotations

import secrets

from shared import policy
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
    return created
