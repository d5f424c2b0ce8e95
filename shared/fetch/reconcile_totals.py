"""List totals asked of the provider (:mod:`shared.fetch.reconcile_signals`): where no list
keyway reads carries its total, one count request per repository gives it — Jira's
``POST /rest/api/3/search/approximate-count`` (``{"jql": "project = <id>"}`` → ``{"count"}``)
for a project's issues. A count below the live records stored of that list gets one sweep of
the list; a count equal or above costs nothing more.

A count is one request, so it runs at most once per ``period`` per repository (configured by
``KEYWAY_RECONCILE_TOTALS_HOURS``; ``0``: every sync), remembered in the repository's
``reconcile_state`` document (``totals_due_at``); a repository's first due time is a jittered
fraction of the period away, as the full sweep's is (its first sync has just read everything).
A count the provider refuses (4xx), cannot give (5xx) or answers malformed is logged
(``fetch.reconcile_total_failed``, with the error's key), changes nothing stored, and is asked
again at the next sync."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.clock import isoformat, parse_iso
from shared.fetch.client import ProviderClient
from shared.fetch.errors import (
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    ProviderUnavailable,
)
from shared.fetch.reconcile_state import COLLECTION, jitter
from shared.log import get_logger
from shared.ports import DocumentStore
from shared.records.model import Context

log = get_logger("keyway.fetch")
FAILURES = (MalformedResponse, NotFoundAtProvider, ProviderRefused, ProviderUnavailable)


@dataclass(frozen=True)
class TotalQuery:
    """One count request: the plan's list it counts (``list_name``), the allowlisted
    ``template`` POSTed, its JSON ``body`` from the repository's parameters, and how the
    count is read from the answer (None: malformed)."""

    list_name: str
    template: str
    body: Callable[[Mapping[str, str]], dict]
    read: Callable[[Any], int | None]


def _count(body: Any) -> int | None:
    value = body.get("count") if isinstance(body, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


QUERIES: dict[str, TotalQuery] = {
    "jira": TotalQuery("issues", "POST /rest/api/3/search/approximate-count",
                       lambda p: {"jql": f"project = {int(p['project'])}"}, _count),
}


def due(store: DocumentStore, ctx: Context, now: str, period: timedelta) -> bool:
    """Whether the repository's count is due (always with a zero period)."""
    if not period:
        return True
    state = store.get(COLLECTION, ctx.repository or "")
    if state is None or not state.get("totals_due_at"):
        first = parse_iso(now) + period * jitter(f"totals:{ctx.repository}")
        store.put(COLLECTION, ctx.repository or "", {
            **(state or {}), "connection": ctx.connection, "totals_due_at": isoformat(first)})
        return False
    return str(state["totals_due_at"]) <= now


def counted(store: DocumentStore, ctx: Context, now: str, period: timedelta) -> None:
    """Note that the repository was counted: next due one ``period`` from ``now``."""
    if not period:
        return
    state = store.get(COLLECTION, ctx.repository or "") or {"connection": ctx.connection}
    store.put(COLLECTION, ctx.repository or "", {
        **state, "totals_due_at": isoformat(parse_iso(now) + period)})


def ask(client: ProviderClient, query: TotalQuery, ctx: Context,
        params: Mapping[str, str]) -> int | None:
    """The provider's count, or None (logged) when it could not be had."""
    try:
        answer = client.post(query.template, {}, query.body(params))
        said = query.read(answer.body)
        if said is None:
            raise MalformedResponse(f"{query.template}: no count in the answer")
        return said
    except FAILURES as e:
        log.warning("fetch.reconcile_total_failed", extra={"fields": {
            "connection": ctx.connection, "repository": ctx.repository,
            "list": query.list_name, "reason": e.key}})
        return None
