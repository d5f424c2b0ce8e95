"""The token-kind policy, enforced in the vault (DESIGN.md promise 4).

* An app token (an admin connected a provider) is sealed only for purpose ``fetch`` to
  ``fetch-P``.
* A personal token (a user linked an identity) is sealed only for purpose ``action`` to
  ``act-P``, and only the personal token of the user who requested the action — the service
  looks personal tokens up by the requester's own id, never by anything the message names.

Every other combination raises :class:`ReleaseRefused`; the service audits each refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import Forbidden
from shared.vault.tokens import TokenKind

_RULES: dict[tuple[str, str], str] = {("app", "fetch"): "fetch", ("personal", "action"): "act"}


class ReleaseRefused(Forbidden):
    key, title = "vault.release_refused", "The vault refuses to release this token"


@dataclass(frozen=True)
class ReleaseRequest:
    kind: TokenKind
    purpose: str
    recipient: str
    tenant: str
    connection: str | None
    requester: str


def check(provider: str, request: ReleaseRequest) -> None:
    """Raise :class:`ReleaseRefused` unless the table allows (kind, purpose, recipient)."""
    prefix = _RULES.get((request.kind, request.purpose))
    if prefix is None:
        raise ReleaseRefused(f"a {request.kind} token is never released for {request.purpose}")
    if request.recipient != f"{prefix}-{provider}":
        raise ReleaseRefused(
            f"a {request.kind} token for {request.purpose} goes only to {prefix}-{provider}")
