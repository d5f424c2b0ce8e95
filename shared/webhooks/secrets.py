"""Which secrets may sign a webhook, including during a rotation.

Names (DESIGN.md "Stable local interfaces"):

* the app-level secret of a provider: ``<provider>-webhook-secret`` (``github-webhook-secret``,
  locally ``KEYWAY_SECRET_GITHUB_WEBHOOK_SECRET``), for hooks at ``/webhook-P/``;
* the secret of one connection's hooks: ``webhook-secret-<connection-id>``, for hooks at
  ``/webhook-P/c/<connection-id>``.

Rotation convention. The :class:`~shared.ports.SecretSource` port answers a version's value
but cannot say which version id is the latest (``"latest"`` is an alias, and the local
environment override has no versions at all), so "the version before the latest" cannot be
found through it. Instead, the previous value lives under the same name plus ``-previous``:

1. store the current value as a new version of ``<name>-previous``
   (``KEYWAY_SECRET_<NAME>_PREVIOUS`` locally);
2. store the new value as a new version of ``<name>``, then change it at the provider;
3. during the window both verify: the latest version of ``<name>`` and of ``<name>-previous``;
4. at the end of the window, disable (or destroy) ``<name>-previous``'s versions: from then on
   only the new value verifies; any other value — neither current nor previous — never does.

Lifecycle of a connection's secret: :func:`create_connection_secret` when an admin connects
with webhook registration on (``oauth-P``); read by ``fetch-P`` to register the hooks and by
``webhook-P`` to verify; :func:`delete_connection_secrets` on disconnect (``vault-P``), after
the hooks are deleted at the provider. A ``webhook-P`` instance that cached the value keeps
verifying with it for at most :data:`TTL` seconds after the deletion (there is no cross-instance
invalidation); after that a delivery to ``/c/<connection>`` answers 404 ``unknown_connection``.

Caching. Values are cached per instance for :data:`TTL` seconds (a Secret Manager call per
request would cost latency). A request that fails to verify against cached values refetches
them once if they are older than :data:`MIN_REFRESH` seconds, so a rotation is seen within
seconds while a flood of bad signatures cannot turn into a flood of Secret Manager calls.
Missing secrets are cached too (negative caching), and at most :data:`MAX_ENTRIES` names.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from shared.errors import InvalidInput, NotFound
from shared.ports import Clock, SecretSource

TTL = 60.0
MIN_REFRESH = 5.0
PREVIOUS_SUFFIX = "-previous"
#: Names kept at most: requests to made-up ``/c/<id>`` paths each cache a miss, so the cache is
#: bounded (oldest first out) instead of growing with every id an attacker tries.
MAX_ENTRIES = 1024
_CONNECTION_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def app_secret_name(provider: str) -> str:
    return f"{provider}-webhook-secret"


def connection_secret_name(connection: str) -> str | None:
    """The secret of one connection's hooks; ``None`` for an id that cannot name a secret."""
    if not isinstance(connection, str) or not _CONNECTION_ID.fullmatch(connection):
        return None
    return f"webhook-secret-{connection}"


def create_connection_secret(source: SecretSource, connection: str) -> str:
    """Store a fresh random secret for ``connection``'s hooks (256 bits, URL-safe text, so
    GitHub's ``config.secret`` and GitLab's ``token`` take it as is) and return its name."""
    name = connection_secret_name(connection)
    if name is None:
        raise InvalidInput("the connection id cannot name a secret",
                           key="webhooks.bad_connection_id")
    source.add_version(name, secrets.token_urlsafe(32).encode("ascii"))
    return name


def delete_connection_secrets(source: SecretSource, connection: str) -> int:
    """Delete ``connection``'s secret and its ``-previous`` (what exists of them); returns
    how many were deleted. ``UnavailableError`` propagates (the caller retries)."""
    name, deleted = connection_secret_name(connection), 0
    for candidate in (name, f"{name}{PREVIOUS_SUFFIX}") if name else ():
        try:
            source.delete(candidate)
            deleted += 1
        except NotFound:
            continue
    return deleted


@dataclass(frozen=True)
class _Entry:
    values: tuple[bytes, ...]
    fetched_at: float

    def __repr__(self) -> str:
        return f"_Entry(values={len(self.values)}, fetched_at={self.fetched_at})"


def fetch(source: SecretSource, name: str) -> tuple[bytes, ...]:
    """The current value of ``name`` and, if set, the previous one (empty: no such secret)."""
    found = []
    for candidate in (name, name + PREVIOUS_SUFFIX):
        try:
            found.append(source.access(candidate))
        except NotFound:
            continue
    return tuple(dict.fromkeys(found))  # the same value twice verifies once


class SecretCache:
    """Per-instance cache of :func:`fetch` results; holds secret values, so it refuses
    ``repr`` of them and pickling."""

    def __init__(self, ttl: float = TTL, min_refresh: float = MIN_REFRESH,
                 max_entries: int = MAX_ENTRIES) -> None:
        self._ttl, self._min_refresh, self._max_entries = ttl, min_refresh, max_entries
        self._entries: dict[tuple[int, str], _Entry] = {}

    def __repr__(self) -> str:
        return f"SecretCache(entries={len(self._entries)})"

    def __reduce__(self) -> Any:
        raise TypeError("SecretCache holds secret values and cannot be pickled")

    def candidates(self, source: SecretSource, clock: Clock, name: str) -> tuple[bytes, ...]:
        """Cached values of ``name`` (current first), fetched when absent or expired."""
        entry = self._entries.get((id(source), name))
        if entry is None or clock.monotonic() - entry.fetched_at >= self._ttl:
            entry = self._load(source, clock, name)
        return entry.values

    def refreshed(self, source: SecretSource, clock: Clock,
                  name: str) -> tuple[bytes, ...] | None:
        """Fresh values after a failed verification, or ``None`` when the cached ones are
        too recent to be worth refetching (they are what the store holds)."""
        entry = self._entries.get((id(source), name))
        if entry is not None and clock.monotonic() - entry.fetched_at < self._min_refresh:
            return None
        before = entry.values if entry is not None else None
        values = self._load(source, clock, name).values
        return None if values == before else values

    def _load(self, source: SecretSource, clock: Clock, name: str) -> _Entry:
        entry = _Entry(fetch(source, name), clock.monotonic())
        key = (id(source), name)
        self._entries.pop(key, None)
        while len(self._entries) >= self._max_entries:  # the oldest loaded goes first
            del self._entries[next(iter(self._entries))]
        self._entries[key] = entry
        return entry
