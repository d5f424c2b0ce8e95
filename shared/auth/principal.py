"""Who is calling the API: the :class:`Principal` a verified bearer token stands for.

A principal belongs to exactly one tenant, has one role (``admin`` or ``member``) and a set of
scopes drawn from :data:`SCOPES`. Handlers ask it for what they need::

    principal.require_scope("connections:write")
    principal.require_admin()

Both raise :class:`~shared.errors.Forbidden` (403). A request without a valid token never gets
a principal: the verifier raises :class:`Unauthenticated` (401) instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from shared.errors import Forbidden, PermanentError

Role = Literal["admin", "member"]
ROLES: tuple[Role, ...] = ("admin", "member")
SCOPES: tuple[str, ...] = ("connections:read", "connections:write", "data:read", "actions:write")
_IDENTIFIER_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")


def is_identifier(value: object) -> bool:
    """A usable tenant or user id: 1-256 characters, no whitespace or control characters."""
    return isinstance(value, str) and _IDENTIFIER_RE.match(value) is not None


class Unauthenticated(PermanentError):
    """No valid bearer token (401). The HTTP layer adds ``WWW-Authenticate: Bearer``.

    The detail is always generic: why a token was refused goes to a debug log line
    (``auth.rejected`` with a reason code), never to the caller and never with the token.
    """

    status, key, title = 401, "auth.unauthenticated", "Unauthenticated"


@dataclass(frozen=True)
class Principal:
    """A verified caller: tenant, user (the token's ``sub``), role and granted scopes."""

    tenant: str
    user: str
    role: Role
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def require_scope(self, scope: str) -> None:
        """Raise ``Forbidden`` (key ``auth.insufficient_scope``) unless ``scope`` was granted."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")  # a programming error, not a 403
        if scope not in self.scopes:
            raise Forbidden(f"this request needs the scope {scope}",
                            key="auth.insufficient_scope")

    def require_admin(self) -> None:
        """Raise ``Forbidden`` (key ``auth.admin_required``) unless the caller is an admin."""
        if self.role != "admin":
            raise Forbidden("this request needs the admin role", key="auth.admin_required")
