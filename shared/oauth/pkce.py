"""PKCE (RFC 7636) with the S256 method only."""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_verifier() -> str:
    """43-128 unreserved characters; 64 here (48 random bytes)."""
    return secrets.token_urlsafe(48)


def challenge_s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
