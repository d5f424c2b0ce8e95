"""A provider token's request budget, shared in the store by every fetch of that token.

One document per token, ``rate_budgets/<key>`` (key from :func:`budget_key`, never from the
token itself), updated only inside ``store.transaction`` so concurrent fetches on any number of
instances see one budget::

    {"limit": 5000, "remaining": 4210, "reset_at": "2030-01-01T01:00:00.000000Z",
     "observed_at": "...", "leases": {"<lease id>": {"expires_at": "...", "purpose": "fetch"}}}

* :meth:`TokenBudget.observe` records what the provider's rate-limit headers said. An
  observation from an older window (its reset more than :data:`SAME_WINDOW` before the stored
  one) is ignored; within one window the lowest ``remaining`` wins (answers can arrive out of
  order). Once ``reset_at`` has passed, ``remaining`` is taken to be back at ``limit``.
* :meth:`TokenBudget.acquire` takes a lease before a request and :meth:`TokenBudget.release`
  returns it — together with the answer's reading, merged by the same rules as ``observe``,
  so a request costs two store transactions (acquire, release), not three. Leases in flight
  count as already spent. A ``fetch`` is refused once
  ``remaining - in_flight <= reserve`` (the reserve is kept for webhooks' follow-ups and
  actions); ``webhook`` and ``action`` may spend the reserve but not go below 0. At most
  ``max_concurrent`` live leases per token; a lease expires after ``lease_seconds`` so a crashed
  instance cannot hold a slot forever. A budget never observed allows everything but the cap.
* One token can have several budgets, one per rate-limit *resource*: GitHub meters REST
  requests (``core``) and GraphQL points (``graphql``) separately, each with its own limit and
  reset, and says which in ``X-RateLimit-Resource``. ``core`` keeps the plain key
  (``github:conn-1:app``); another resource's key adds its name (``github:conn-1:app:graphql``,
  :meth:`TokenBudget.for_resource`), so spending one never blocks the other. A GraphQL lease
  counts as one request in flight; the points a query cost arrive through ``observe``.
* A provider whose answers carry no remaining quota (Bitbucket; the table's
  ``rate_limit.local_budget``) is counted here instead: :meth:`TokenBudget.count` spends one
  request of a fixed window opened by the first request (``limit`` per ``window``), and a 429
  without quota headers calls :meth:`TokenBudget.exhaust`: nothing is left until its retry time.
* With ``blocks=True`` (the fetch handler's runs) requests are granted in blocks: one
  transaction leases N requests (a lease with ``"count": N``, counted as N in flight), the
  grants and the answers' readings stay in the process until the next exchange
  (:mod:`shared.fetch._blocks`), so the document sees one write per block, not two per
  request; :meth:`TokenBudget.close` returns what is held.
* :func:`read_rate_headers`, :func:`is_rate_limited` and :func:`retry_at` read an answer's
  rate-limit headers with the names and reset style the provider table gives;
  :func:`answer_resource` reads the resource an answer counted against
  (:mod:`shared.fetch.rate_headers`, re-exported here).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from shared.clock import isoformat
from shared.errors import InvalidInput
from shared.fetch._blocks import Blocks, Pending
from shared.fetch._budget_state import (  # noqa: F401 - SAME_WINDOW is part of this module's API
    SAME_WINDOW,
    _check_observation,
    _merge,
    _spend,
    _State,
)
from shared.fetch.errors import BudgetExhausted
from shared.fetch.rate_headers import (  # noqa: F401 - re-exported: callers read them here
    DEFAULT_RETRY_AFTER,
    RESOURCE,
    answer_resource,
    is_rate_limited,
    read_rate_headers,
    retry_at,
)
from shared.log import redact
from shared.ports import Clock, DocumentStore, Transaction

COLLECTION = "rate_budgets"
SLOT_WAIT = timedelta(seconds=2)  # retry_at when every concurrent slot is taken
Purpose = Literal["fetch", "webhook", "action"]
PURPOSES: frozenset[str] = frozenset({"fetch", "webhook", "action"})


CORE = "core"  # the resource whose budget keeps the plain key
_RESOURCE = RESOURCE


def budget_key(provider: str, connection: str, kind: str = "app", resource: str = CORE) -> str:
    """The budget document id for a connection's ``kind`` token (``github:conn-1:app``), and
    for one of its other rate-limit resources (``github:conn-1:app:graphql``).

    Built from names only, never from the token value; a part that looks like a token is
    refused so a caller cannot pass one by mistake.
    """
    if not isinstance(resource, str) or not _RESOURCE.match(resource):
        raise InvalidInput("a budget resource is a short lowercase name",
                           key="budget.invalid_key")
    parts = (provider, connection, kind) + (() if resource == CORE else (resource,))
    if not all(isinstance(p, str) and p for p in parts) or any(redact(p) != p for p in parts):
        raise InvalidInput("budget key parts must be non-empty names", key="budget.invalid_key")
    return ":".join(quote(p, safe="-_.") for p in parts)


class TokenBudget:
    """The shared budget of one provider token (see the module docstring)."""

    def __init__(self, store: DocumentStore, clock: Clock, key: str, *, reserve: int = 100,
                 max_concurrent: int = 4, lease_seconds: int = 60,
                 resource: str = CORE, blocks: bool = False) -> None:
        if reserve < 0 or max_concurrent < 1 or lease_seconds < 1:
            raise InvalidInput("reserve >= 0, max_concurrent >= 1 and lease_seconds >= 1")
        self._store, self._clock, self.key = store, clock, key
        self.reserve, self.max_concurrent = reserve, max_concurrent
        self.lease_seconds, self.resource = lease_seconds, resource
        self._siblings: dict[str, TokenBudget] = {resource: self}
        self._blocks = Blocks(self, clock.monotonic) if blocks else None

    def __repr__(self) -> str:
        return (f"TokenBudget(key={self.key!r}, reserve={self.reserve}, "
                f"max_concurrent={self.max_concurrent})")

    def for_resource(self, resource: str) -> TokenBudget:
        """The same token's budget for another rate-limit ``resource`` (same settings): the
        key of :func:`budget_key` with that resource. Only from the ``core`` budget."""
        if resource == self.resource:  # GitLab: GraphQL counts against the API's own limit
            return self
        found = self._siblings.get(resource)
        if found is not None:
            return found
        if self.resource != CORE:
            raise InvalidInput("other resources' budgets are reached from the core budget")
        if not isinstance(resource, str) or not _RESOURCE.match(resource):
            raise InvalidInput("a budget resource is a short lowercase name",
                               key="budget.invalid_key")
        sibling = TokenBudget(self._store, self._clock, f"{self.key}:{resource}",
                              reserve=self.reserve, max_concurrent=self.max_concurrent,
                              lease_seconds=self.lease_seconds, resource=resource,
                              blocks=self._blocks is not None)
        self._siblings[resource] = sibling
        return sibling

    def floor(self, purpose: str) -> int:
        """The quota ``purpose`` may not spend (the reserve, for a fetch)."""
        if purpose not in PURPOSES:
            raise InvalidInput(f"unknown budget purpose {purpose[:20]!r}")
        return self.reserve if purpose == "fetch" else 0


    def acquire(self, purpose: Purpose = "fetch") -> str:
        """A lease id for one request, or :class:`BudgetExhausted` with ``retry_at``. With
        ``blocks``, a grant from the block this process holds (:mod:`shared.fetch._blocks`)."""
        if self._blocks is not None:
            self.floor(purpose)
            return self._blocks.take(purpose)
        floor, lease_id = self.floor(purpose), uuid.uuid4().hex

        def take(tx: Transaction) -> tuple[str, datetime | None]:
            now = self._clock.now()
            state = _State.load(tx.get(COLLECTION, self.key), now)
            if len(state.leases) >= self.max_concurrent:
                return "slots", now + SLOT_WAIT
            spendable = state.spendable()
            if spendable is not None and spendable <= floor:
                return "quota", state.reset_at or now + SLOT_WAIT
            expires = now + timedelta(seconds=self.lease_seconds)
            state.leases[lease_id] = {"expires_at": isoformat(expires), "purpose": purpose}
            tx.put(COLLECTION, self.key, state.dump())
            return "ok", None

        verdict, when = self._store.transaction(take)
        self._refuse(verdict, when, purpose, floor)
        return lease_id

    def release(self, lease_id: str,
                observation: tuple[int, int, datetime] | None = None) -> None:
        """Return a lease (idempotent: an unknown or expired lease is ignored) and, in the same
        transaction, record the answer's ``(limit, remaining, reset_at)`` as :meth:`observe`
        would — one store write per request instead of two."""
        if observation is not None:
            _check_observation(*observation)
        if self._blocks is not None:
            self._blocks.give_back(lease_id, observation)
            return

        def drop(tx: Transaction) -> None:
            now = self._clock.now()
            doc = tx.get(COLLECTION, self.key)
            held = bool(doc) and lease_id in (doc.get("leases") or {})
            if observation is None:
                if held:
                    state = _State.load(doc, now)
                    state.leases.pop(lease_id, None)
                    tx.put(COLLECTION, self.key, {**doc, "leases": state.leases})
                return
            state = _State.load(doc, now)
            state.leases.pop(lease_id, None)
            if _merge(state, bool(doc), *observation, now) or held:
                tx.put(COLLECTION, self.key, state.dump())

        self._store.transaction(drop)

    def observe(self, *, limit: int, remaining: int, reset_at: datetime) -> None:
        """Record the provider's rate-limit headers (see the module docstring for merging)."""
        _check_observation(limit, remaining, reset_at)
        if self._blocks is not None:
            self._blocks.note((limit, remaining, reset_at))
            return

        def merge(tx: Transaction) -> None:
            now = self._clock.now()
            doc = tx.get(COLLECTION, self.key)
            state = _State.load(doc, now)
            if _merge(state, bool(doc), limit, remaining, reset_at, now):
                tx.put(COLLECTION, self.key, state.dump())

        self._store.transaction(merge)

    def count(self, *, limit: int, window: timedelta) -> None:
        """Spend one request of a budget keyway counts itself (no quota headers): the window
        opens with the first request and allows ``limit`` requests until it closes."""
        if limit < 1 or window <= timedelta(0):
            raise InvalidInput("a counted budget needs limit >= 1 and a positive window")
        if self._blocks is not None:
            self._blocks.count(limit, window)
            return

        def spend(tx: Transaction) -> None:
            now = self._clock.now()
            state = _State.load(tx.get(COLLECTION, self.key), now)
            _spend(state, 1, limit, window, now)
            tx.put(COLLECTION, self.key, state.dump())

        self._store.transaction(spend)

    def exhaust(self, until: datetime, limit: int | None = None) -> None:
        """The provider refused for quota and said nothing else: none is left until ``until``."""
        if until.tzinfo is None:
            raise InvalidInput("exhaust needs an aware time")
        if self._blocks is not None:
            self.close()  # what this process holds and counted goes in first

        def spend(tx: Transaction) -> None:
            now = self._clock.now()
            state = _State.load(tx.get(COLLECTION, self.key), now)
            state.limit = state.limit if state.limit is not None else limit
            state.remaining, state.reset_at = 0, max(until, now)
            state.observed_at = isoformat(now)
            tx.put(COLLECTION, self.key, state.dump())

        self._store.transaction(spend)

    def close(self) -> None:
        """Return the blocks this budget and its other resources' budgets hold, with what
        their answers said (a no-op without ``blocks``). Call at the end of a run."""
        for budget in list(self._siblings.values()):
            if budget._blocks is not None:
                budget._blocks.close()

    def refuse_slots(self) -> None:
        raise BudgetExhausted(f"{self.max_concurrent} requests already in flight for this "
                              "token", self._clock.now() + SLOT_WAIT)

    def _exchange(self, returned: list[str], pending: Pending, purpose: str | None,
                  want: int) -> tuple[str, int]:
        """One transaction: drop the ``returned`` block leases, fold ``pending`` in, and for a
        ``purpose`` lease a new block of up to ``want`` grants: (lease id, grants)."""
        floor, lease_id = (self.floor(purpose) if purpose else 0), uuid.uuid4().hex

        def swap(tx: Transaction) -> tuple[str, int, datetime | None]:
            now = self._clock.now()
            doc = tx.get(COLLECTION, self.key)
            state = _State.load(doc, now)
            changed = any(state.leases.pop(lease, None) is not None for lease in returned)
            for reading in pending.readings:
                changed = _merge(state, bool(doc) or changed, *reading, now) or changed
            if pending.counted and pending.window is not None:
                _spend(state, pending.counted, *pending.window, now)
                changed = True
            verdict, grant, wait_until = "ok", 0, None
            spendable = state.spendable()
            if purpose is None:
                pass
            elif len(state.leases) >= self.max_concurrent:
                verdict, wait_until = "slots", now + SLOT_WAIT
            elif spendable is not None and spendable - floor <= 0:
                verdict, wait_until = "quota", state.reset_at or now + SLOT_WAIT
            else:
                grant = want if spendable is None else min(want, spendable - floor)
                expires = now + timedelta(seconds=self.lease_seconds)
                state.leases[lease_id] = {"expires_at": isoformat(expires),
                                          "purpose": purpose, "count": grant}
                changed = True
            if changed:
                tx.put(COLLECTION, self.key, state.dump())
            return verdict, grant, wait_until

        verdict, grant, when = self._store.transaction(swap)
        self._refuse(verdict, when, purpose, floor)
        return lease_id, grant

    def blocked_until(self) -> datetime | None:
        """The reset time while the quota is spent down to the fetch reserve, else None.

        Requests merely in flight do not block (they end in seconds, not at the reset)."""
        now = self._clock.now()
        state = _State.load(self._store.get(COLLECTION, self.key), now)
        if state.remaining is None or state.reset_at is None or now >= state.reset_at:
            return None
        return state.reset_at if state.remaining <= self.reserve else None

    def _refuse(self, verdict: str, when: datetime | None, purpose: str, floor: int) -> None:
        """Raise what a refused lease is (``slots``: too many in flight; ``quota``: spent
        down to ``purpose``'s floor)."""
        if verdict == "slots":
            raise BudgetExhausted(f"{self.max_concurrent} requests already in flight for this "
                                  "token", when)
        if verdict == "quota":
            raise BudgetExhausted(f"rate budget spent down to the {purpose} floor ({floor}) "
                                  "until the reset", when)

    def snapshot(self) -> dict[str, Any]:
        """The budget as seen now: limit, remaining, reset_at (ISO), in_flight, settings."""
        now = self._clock.now()
        state = _State.load(self._store.get(COLLECTION, self.key), now)
        blocked = self.blocked_until()
        return {"key": self.key, "limit": state.limit, "remaining": state.remaining,
                "reset_at": isoformat(state.reset_at) if state.reset_at else None,
                "observed_at": state.observed_at, "in_flight": len(state.leases),
                "reserve": self.reserve, "max_concurrent": self.max_concurrent,
                "blocked_until": isoformat(blocked) if blocked else None}
