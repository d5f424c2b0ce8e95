"""Composite document ids: each part percent-encoded, then joined with ``:``.

Tenant and user ids come from the bearer token and may contain anything, ``:`` included, so
joining them raw would let ``tenant a:b, user c`` and ``tenant a, user b:c`` share one id (and
one overwrite the other's record). :func:`escape` encodes everything but ``A-Za-z0-9_.-~`` (and
a leading ``_``, which Firestore reserves), so no part contains ``:`` or ``/`` and :func:`join`
is injective; :func:`split` inverts it. Ids made only of those characters are unchanged.

:func:`identity_id` is the one id of a user's linked identity with a provider: the
``identities`` record in the business store and the ``personal_tokens`` record in the vault.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from shared.errors import InvalidInput

SEPARATOR = ":"
_PLAIN = re.compile(r"[A-Za-z0-9.~-][A-Za-z0-9_.~-]*")  # what escape leaves unchanged
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_ASCII = {c: f"%{c:02X}" for c in range(128) if chr(c) not in _SAFE}  # quote's own spelling


def escape(part: str) -> str:
    """Percent-encode everything but ``A-Za-z0-9_.-~``, and a leading ``_`` too."""
    if _PLAIN.fullmatch(part):  # most ids: nothing to encode (quote's own answer, faster)
        return part
    text = part.translate(_ASCII) if part.isascii() else quote(part, safe="")
    return "%5F" + text[1:] if text.startswith("_") else text


def join(*parts: str) -> str:
    """The id of ``parts`` (each a non-empty string)."""
    if not all(isinstance(p, str) and p for p in parts):
        raise InvalidInput("an id part must be a non-empty string")
    return SEPARATOR.join(escape(p) for p in parts)


def split(rid: str, count: int) -> tuple[str, ...]:
    """The ``count`` parts of an id made by :func:`join`."""
    parts = rid.split(SEPARATOR) if isinstance(rid, str) else []
    if len(parts) != count or not all(parts):
        raise InvalidInput("not an id of this kind")
    return tuple(unquote(p) for p in parts)


def identity_id(provider: str, tenant: str, user: str) -> str:
    """``<provider>:<tenant>:<user>``, each part escaped."""
    return join(provider, tenant, user)


def parse_identity_id(rid: str) -> tuple[str, str, str]:
    provider, tenant, user = split(rid, 3)
    return provider, tenant, user
