"""Id sweeps (:mod:`shared.fetch.reconcile`): read one list whole and turn the records of its
scope that it no longer contains into tombstones. :func:`sweep` is the one primitive the count
signals (:mod:`shared.fetch.reconcile_signals`) and the periodic cycle use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.fetch.client import ProviderClient
from shared.fetch.plan import ListSpec, Parent
from shared.fetch.walk import page_items
from shared.log import get_logger
from shared.ports import DocumentStore, Filter
from shared.records import github
from shared.records import store as records
from shared.records.model import Context, parent_id

log = get_logger("keyway.fetch")

MAX_PAGES = 1000  # a list longer than this many pages is left unswept (logged), never guessed
PARENT_FIELD = {"reviews": "pull_request", "comments": "parent"}
#: Lists that share a record kind within a repository, told apart by a field.
SCOPES: dict[tuple[str, str], tuple[Filter, ...]] = {
    ("github", "issue_comments"): (Filter("review_comment", "==", False),),
    ("github", "review_comments"): (Filter("review_comment", "==", True),),
}
GITHUB_ISSUE_COMMENTS = ListSpec(
    "issue_comments", "GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {},
    "comments", lambda raw, ctx, p: github.comment(raw, ctx, p.kind, p.number))


@dataclass
class Tally:
    """What reconciliation spent and found."""

    requests: int = 0
    points: int = 0  # GraphQL points (GitHub's list totals)
    tombstoned: int = 0
    swept_lists: int = 0
    targeted: int = 0  # targeted sweeps (count mismatches)
    repositories: int = 0  # repositories fully swept
    deferred: int = 0  # due repositories left for a later cycle (no spare budget)
    skipped: list[str] = field(default_factory=list)  # lists too long to sweep


def _request(spec: ListSpec, path_params: Mapping[str, str]) -> tuple[Mapping[str, str], dict]:
    params = dict(spec.params)
    if spec.query is not None:  # a full walk: the query with no lower bound
        params.update(spec.query(path_params, None))
        path_params = {k: v for k, v in path_params.items() if f"{{{k}}}" in spec.template}
    return path_params, params


def sweep(store: DocumentStore, client: ProviderClient, now: str, spec: ListSpec, ctx: Context,
          path_params: Mapping[str, str], tally: Tally, parent: Parent | None = None,
          extra: tuple[Filter, ...] = (),
          on_page: Callable[[list], None] | None = None) -> int:
    """Read ``spec`` whole and tombstone the in-scope records it no longer lists (see the
    module docstring); ``now`` is the sweep's start; ``on_page`` hears every page's items.
    Returns the tombstones written."""
    path, params = _request(spec, path_params)
    response = client.get(spec.template, path, params)
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        tally.requests += 1
        items = [response.body] if spec.single else page_items(response.body, spec.items_key)
        if on_page is not None:
            on_page(items)
        for raw in items:
            produced = spec.normalize(raw, ctx, parent) if isinstance(raw, dict) else None
            for record in produced if isinstance(produced, list) else [produced]:
                if record is None:
                    continue
                records.upsert(store, record, seen_at=now)
                if record["kind"] == spec.kind:
                    seen.add(record["id"])
        if not response.next_url:
            break
        response = client.get_next(response.next_url, spec.template)
    else:
        tally.skipped.append(spec.name)
        log.warning("fetch.reconcile_list_too_long", extra={"fields": {
            "connection": ctx.connection, "repository": ctx.repository, "list": spec.name}})
        return 0
    where = [Filter("connection", "==", ctx.connection), Filter("deleted", "==", False),
             Filter("repository", "==", ctx.repository), *extra]
    if parent is not None:
        where.append(Filter(PARENT_FIELD[spec.kind], "==",
                            parent_id(ctx, parent.kind, parent.number)))
    gone = [s.id for s in store.query(spec.kind, where) if s.id not in seen]
    done = sum(records.mark_thread_deleted(store, spec.kind, rid, now) for rid in gone)
    tally.swept_lists += 1
    tally.tombstoned += done
    return done
