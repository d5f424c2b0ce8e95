"""First start of a local stack: state directory, KMS keys and generated local secrets.

Created: a KMS key per token component (``vault-P``, wrapping its data keys); one webhook
secret per provider; one channel key per allowed ``vault-P → fetch-P`` / ``vault-P → act-P``
pair (:func:`shared.crypto.channels.ensure`); the audit chain key (``audit-chain-key``), made
here once so concurrent first appends cannot race to create two; the local push credential
(``local-push-token``, :func:`push_token`) that the runner's push endpoints require.

Idempotent: each step checks before it creates, so every ``make run`` may call it.
:func:`ensure_github_app_key` makes the sandbox GitHub App's private key (only when the runner
offers the sandbox GitHub, so other stacks pay nothing for an RSA key).
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import audit, policy
from shared.crypto import channels
from shared.errors import NotFound
from shared.ports import Ports, SecretSource
from shared.vault.github_app import PRIVATE_KEY_SECRET

PUSH_TOKEN_SECRET = "local-push-token"  # noqa: S105 - the secret's name, not a value


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
    try:
        ports.secrets.access(PUSH_TOKEN_SECRET)
    except NotFound:
        ports.secrets.add_version(PUSH_TOKEN_SECRET, secrets.token_urlsafe(32).encode())
        created.append(PUSH_TOKEN_SECRET)
    return created


def push_token(ports: Ports) -> bytes:
    """The local push credential (URL-safe, so it can ride in a push endpoint's query)."""
    return ports.secrets.access(PUSH_TOKEN_SECRET)


def ensure_github_app_key(source: SecretSource) -> bytes:
    """The GitHub App private key (secret ``github-app-private-key``, where the vault reads
    it): the existing one, or a fresh RSA 2048 key (PKCS#8 PEM) stored at first start."""
    try:
        return source.access(PRIVATE_KEY_SECRET)
    except NotFound:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        source.add_version(PRIVATE_KEY_SECRET, pem)
        return pem
