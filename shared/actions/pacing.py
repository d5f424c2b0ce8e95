"""Write pacing: each linked identity's comments kept under its provider's documented write
limits (the provider table's ``api.write_limits``, docs/PROVIDERS.md), whichever ``act-P``
instance posts them.

One document per identity (the personal token it holds), ``write_pacing/<key>`` with the key
from :func:`pacing_key` (names only, never the token), written only inside
``store.transaction``::

    {"grants": ["<iso>", ...],          # slots granted within the longest window, oldest first
     "paused_until": "<iso>" | null}    # set by a provider's rate-limit answer

* :meth:`WritePacer.take` grants one write slot, or answers when the next one frees. Windows
  slide: a slot is free when, for every window of ``requests`` per ``window_seconds``, fewer
  than ``requests`` grants lie in the last ``window_seconds``, and the pause is over. A sliding
  window never lets more than ``requests`` through in *any* interval of its length, so it also
  keeps within a fixed window of that length, whichever the provider counts (GitHub does not
  say which it uses for content creation).
* :meth:`WritePacer.pause` records a provider's secondary-limit answer (403/429 with
  ``Retry-After`` or a reset): no slot is granted before that time.
* A provider that publishes no write limit (an empty ``windows``) is paced only by its
  rate-limit answers.

A granted slot counts even if the post then does not happen (an expired envelope, a
refusal): pacing errs on the side of writing less, never more.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import quote

from shared.clock import isoformat, parse_iso
from shared.ports import Clock, DocumentStore, Ports, Transaction
from shared.providers import registry
from shared.providers.schema import WriteWindowSpec

COLLECTION = "write_pacing"


def pacing_key(provider: str, tenant: str, user: str) -> str:
    """The pacing document id of ``user``'s linked identity with ``provider`` in ``tenant``."""
    return ":".join(quote(part, safe="-_.") for part in (provider, tenant, user))


def for_identity(ports: Ports, provider: str, tenant: str, user: str) -> WritePacer:
    """The pacer of ``user``'s identity with ``provider``, with the provider table's windows."""
    return WritePacer(ports.business, ports.clock, pacing_key(provider, tenant, user),
                      registry.get(provider).api.write_limits.windows)


class WritePacer:
    """The write slots of one identity's token (see the module docstring)."""

    def __init__(self, store: DocumentStore, clock: Clock, key: str,
                 windows: Sequence[WriteWindowSpec]) -> None:
        self._store, self._clock, self.key = store, clock, key
        self.windows = tuple(windows)
        self._keep = max((timedelta(seconds=w.window_seconds) for w in self.windows),
                         default=timedelta(0))

    def __repr__(self) -> str:
        return f"WritePacer(key={self.key!r}, windows={len(self.windows)})"

    def _next_free(self, grants: list[datetime], paused: datetime | None,
                   now: datetime) -> datetime | None:
        """When the next slot frees, or None when one is free now."""
        waits = [paused] if paused is not None and paused > now else []
        for window in self.windows:
            span = timedelta(seconds=window.window_seconds)
            inside = [g for g in grants if g > now - span]
            if len(inside) >= window.requests:  # the oldest that must leave, leaves at +span
                waits.append(inside[len(inside) - window.requests] + span)
        return max(waits) if waits else None

    def take(self) -> datetime | None:
        """Grant one write slot now (None), or the time the next one frees (nothing granted)."""
        def write(tx: Transaction) -> datetime | None:
            now = self._clock.now()
            doc = tx.get(COLLECTION, self.key) or {}
            grants = [parse_iso(g) for g in doc.get("grants") or ()]
            grants = [g for g in grants if g > now - self._keep]
            paused = parse_iso(doc["paused_until"]) if doc.get("paused_until") else None
            wait = self._next_free(grants, paused, now)
            if wait is not None:
                return wait
            if self.windows:
                grants.append(now)
            new = {"grants": [isoformat(g) for g in grants],
                   "paused_until": isoformat(paused) if paused and paused > now else None}
            if new != {"grants": doc.get("grants") or [], "paused_until": doc.get("paused_until")}:
                tx.put(COLLECTION, self.key, new)  # no write when nothing is counted or expired
            return None

        return self._store.transaction(write)

    def pause(self, until: datetime) -> None:
        """The provider said "not before ``until``": no slot is granted until then."""
        def write(tx: Transaction) -> None:
            doc = tx.get(COLLECTION, self.key) or {"grants": []}
            stored = doc.get("paused_until")
            if stored is None or stored < isoformat(until):
                tx.put(COLLECTION, self.key, {**doc, "paused_until": isoformat(until)})

        self._store.transaction(write)

    def paused_until(self) -> datetime | None:
        """The pause in force now, if any (for status and tests)."""
        doc = self._store.get(COLLECTION, self.key) or {}
        until = parse_iso(doc["paused_until"]) if doc.get("paused_until") else None
        return until if until is not None and until > self._clock.now() else None
