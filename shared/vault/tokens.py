"""The in-memory form of a provider token. It exists only in the memory of the OAuth
callback, the provider's vault and the one component the vault pushed it to."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

TokenKind = Literal["app", "personal"]


@dataclass(frozen=True, repr=False)
class TokenSet:
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = field(default_factory=tuple)
    account_id: str | None = None

    def __repr__(self) -> str:
        expiry = self.expires_at.isoformat() if self.expires_at else None
        return (f"TokenSet(expires_at={expiry!r}, scopes={self.scopes!r}, "
                f"refresh_token={'present' if self.refresh_token else 'absent'})")

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("TokenSet cannot be pickled")
