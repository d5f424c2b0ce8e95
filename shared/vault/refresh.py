"""Single-flight token refresh across concurrent instances.

Protocol, per vault record (``generation`` counts the writes of its token fields, each bound
into the fields' associated data; the record's anchor, :mod:`shared.vault.anchors`, is read
first and the record refused below it):

1. In a store transaction: if the access token is valid for longer than ``margin`` → use it.
   If another refresher holds an unexpired lease → wait and look again. Otherwise take the
   lease (owner, until) and remember the generation *g*.
2. Outside the transaction: call the provider's token endpoint with the refresh token.
3. In a store transaction: if the generation is still *g*, write the new access token and the
   (possibly rotated) refresh token, generation *g+1*, clear the lease — the rotated refresh
   token is persisted before the new access token is handed to anyone. If the generation
   moved, another refresher won; use its tokens.

``invalid_grant`` marks the record ``needs_reauth`` (only if the generation is still *g*, so a
late loser never overrides a winner's fresh token) and raises :class:`NeedsReauth`; so does a
record whose self-hosted host has no registered client any more (key
``oauth.host_not_registered``, :mod:`shared.vault.endpoints`). A failed
write after a successful refresh is retried, since a rotated refresh token exists nowhere else.
After a write at *g+1* the anchor is raised to *g+1*; a valid token read at a generation above
its anchor (the anchor write was lost) raises the anchor then.

A legacy record (fields without a bound generation, :mod:`shared.vault.records`) read while it
has no anchor is rewritten at the next generation and anchored right away — unless another
instance holds its refresh lease or wrote it meanwhile (then that writer binds the generation);
the rewrite is audited as ``rebind``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.errors import Conflict, NotFound, RetryableError, UnavailableError
from shared.ports import Clock, DocumentStore
from shared.vault.anchors import GenerationAnchors
from shared.vault.oauth import EndpointResolver, InvalidGrant
from shared.vault.records import RecordCodec
from shared.vault.tokens import TokenSet


class NeedsReauth(Conflict):
    key, title = "vault.needs_reauth", "The connection must be authorized again"


@dataclass(frozen=True)
class RefreshPolicy:
    margin: timedelta = timedelta(minutes=5)
    lease: timedelta = timedelta(seconds=60)
    poll: float = 0.05
    max_wait: float = 90.0
    write_attempts: int = 5


class Refresher:
    def __init__(self, store: DocumentStore, codec: RecordCodec, endpoints: EndpointResolver,
                 clock: Clock, anchors: GenerationAnchors, policy: RefreshPolicy | None = None,
                 on_event: Callable[[str, str, str, str], None] | None = None) -> None:
        self._store, self._codec, self._endpoints = store, codec, endpoints
        self._anchors = anchors
        self._clock, self._policy = clock, policy or RefreshPolicy()
        self._on_event = on_event or (lambda event, collection, record_id, outcome: None)

    def fresh(self, collection: str, record_id: str) -> TokenSet:
        """A valid access token for the record, refreshing it at most once across instances."""
        owner = uuid.uuid4().hex
        floor = self._anchors.floor(collection, record_id)
        deadline = self._clock.monotonic() + self._policy.max_wait
        while True:
            verdict, doc = self._store.transaction(
                lambda tx: self._decide(tx, collection, record_id, owner))
            if verdict == "fresh":
                tokens = self._codec.decode(collection, record_id, doc, floor)
                self._settle(collection, record_id, doc, floor, tokens)
                return tokens
            if verdict == "refresh":
                return self._refresh(collection, record_id, doc, owner, floor)
            if self._clock.monotonic() > deadline:
                raise UnavailableError("another instance is still refreshing this token")
            self._clock.sleep(self._policy.poll)

    def _decide(self, tx: Any, collection: str, record_id: str, owner: str):
        doc = tx.get(collection, record_id)
        if doc is None:
            raise NotFound("no such vault record")
        if doc.get("status") == "needs_reauth":
            raise NeedsReauth("the provider refused this token; reconnect")
        now = self._clock.now()
        expires = parse_iso(doc["expires_at"]) if doc.get("expires_at") else None
        if expires is None or expires - now > self._policy.margin or not doc.get("refresh_token"):
            return "fresh", doc
        lease = doc.get("refresh_lease")
        if lease and lease["owner"] != owner and parse_iso(lease["until"]) > now:
            return "wait", None
        doc = dict(doc, refresh_lease={"owner": owner,
                                       "until": isoformat(now + self._policy.lease)})
        tx.put(collection, record_id, doc)
        return "refresh", doc

    def _settle(self, collection: str, record_id: str, doc: dict, floor: int,
                tokens: TokenSet) -> None:
        """After a good read: anchor a record whose anchor lags, rewrite a legacy one."""
        generation = self._codec.bound_generation(doc, floor)
        if generation is None:
            self._migrate(collection, record_id, doc, tokens)
        elif generation > floor:
            self._anchors.advance(collection, record_id, doc["tenant"], generation)

    def _migrate(self, collection: str, record_id: str, doc: dict, tokens: TokenSet) -> None:
        encoded = self._codec.encode(collection, record_id, doc["tenant"], tokens, {},
                                     self._codec.next_generation(doc, 0))

        def write(tx) -> bool:
            current = tx.get(collection, record_id)
            if (current is None or current.get("generation") != doc.get("generation")
                    or current.get("refresh_lease")):
                return False  # written or being refreshed meanwhile: that writer binds it
            tx.put(collection, record_id, {**current, **encoded,
                                           "updated_at": isoformat(self._clock.now())})
            return True

        if self._store.transaction(write):
            self._anchors.advance(collection, record_id, doc["tenant"], encoded["generation"])
            self._on_event("rebind", collection, record_id,
                           f"generation={encoded['generation']}")

    def _refresh(self, collection: str, record_id: str, doc: dict, owner: str,
                 floor: int) -> TokenSet:
        generation = int(doc.get("generation") or 0)
        old = self._codec.decode(collection, record_id, doc, floor)
        try:
            new = self._endpoints(doc).refresh(old.refresh_token or "")
        except InvalidGrant as e:  # or no client may refresh it (its host is not registered)
            self._store.transaction(lambda tx: self._mark_reauth(tx, collection, record_id,
                                                                 generation))
            self._on_event("refresh", collection, record_id, "invalid_grant")
            raise NeedsReauth("the provider refused the refresh token; reconnect",
                              key=e.reauth_key) from None
        except RetryableError:
            self._store.transaction(lambda tx: self._release(tx, collection, record_id, owner))
            raise
        new = TokenSet(new.access_token, new.refresh_token or old.refresh_token,
                       new.expires_at, new.scopes or old.scopes, old.account_id)
        result = self._persist(collection, record_id, doc, generation, new, floor)
        self._on_event("refresh", collection, record_id,
                       "refreshed" if result is new else "superseded")
        return result

    def _persist(self, collection: str, record_id: str, before: dict, generation: int,
                 new: TokenSet, floor: int) -> TokenSet:
        # Encrypt outside the transaction: it may reserve data-key uses in one of its own.
        encoded = self._codec.encode(collection, record_id, before["tenant"], new, {},
                                     generation + 1)

        def write(tx):
            current = tx.get(collection, record_id)
            if current is None:
                raise NotFound("vault record deleted during refresh")
            if int(current.get("generation") or 0) != generation:
                return self._codec.decode(collection, record_id, current, floor)
            doc = {**current, **encoded}
            doc.update(refresh_lease=None, status="active",
                       updated_at=isoformat(self._clock.now()))
            tx.put(collection, record_id, doc)
            return new

        for attempt in range(self._policy.write_attempts):
            try:
                result = self._store.transaction(write)
                if result is new:
                    self._anchors.advance(collection, record_id, before["tenant"],
                                          generation + 1)
                return result
            except RetryableError:
                if attempt + 1 == self._policy.write_attempts:
                    raise
                self._clock.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _mark_reauth(self, tx: Any, collection: str, record_id: str, generation: int) -> None:
        current = tx.get(collection, record_id)
        if current is None or int(current.get("generation") or 0) != generation:
            return
        tx.put(collection, record_id, dict(current, status="needs_reauth", refresh_lease=None,
                                           updated_at=isoformat(self._clock.now())))

    def _release(self, tx: Any, collection: str, record_id: str, owner: str) -> None:
        current = tx.get(collection, record_id)
        if current and (current.get("refresh_lease") or {}).get("owner") == owner:
            tx.put(collection, record_id, dict(current, refresh_lease=None))
