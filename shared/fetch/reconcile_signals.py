"""Count signals (:mod:`shared.fetch.reconcile`): the children counts the list items keyway
already reads carry (:data:`COUNTS`) and list totals (:data:`TOTALS`), compared with what is
stored; a count below the store's gets one targeted sweep (:mod:`shared.fetch.reconcile_sweep`)
of that parent's children, a total below it one sweep of that list."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.adapters._documents import MAX_IN
from shared.clock import isoformat
from shared.errors import InvalidInput, PermanentError
from shared.fetch import reconcile_totals as asked
from shared.fetch.client import ProviderClient
from shared.fetch.plan import ListSpec, Parent, ProviderPlan
from shared.fetch.reconcile_sweep import GITHUB_ISSUE_COMMENTS, SCOPES, Tally, sweep
from shared.log import get_logger
from shared.ports import Filter, Ports
from shared.records import jira
from shared.records.model import Context, parent_id

log = get_logger("keyway.fetch")

ParentOf = Callable[[dict, Mapping[str, str]], "Parent | None"]


def _numbered(kind: str | None, field: str, param: str) -> ParentOf:
    """The parent an item is, by its number ``field`` (``kind`` None: GitHub's issues list,
    where an item with ``pull_request`` is a pull request)."""
    def parent(raw: dict, params: Mapping[str, str]) -> Parent | None:
        number = _integer(raw.get(field))
        if number is None:
            return None
        found = kind or ("pull_request" if raw.get("pull_request") is not None else "issue")
        return Parent(found, number, {**params, param: str(number)})
    return parent


def _jira_issue(raw: dict, params: Mapping[str, str]) -> Parent | None:
    key = raw.get("key")
    try:
        return Parent("issue", jira.number_of(key), {"issueIdOrKey": str(key)})
    except InvalidInput:
        return None


@dataclass(frozen=True)
class Count:
    """A list item's count of its children (``field``, a dotted path), the parent the item is
    (``parent``), and the children list swept on a mismatch (``child``: a name in the plan's
    ``children``, or a :class:`ListSpec`); ``extra``: filters telling those children apart
    from others of the kind."""

    field: str
    child: str | ListSpec
    parent: ParentOf
    extra: tuple[Filter, ...] = ()


COUNTS: dict[tuple[str, str], Count] = {
    ("github", "issues"): Count("comments", GITHUB_ISSUE_COMMENTS,
                                _numbered(None, "number", "issue_number"),
                                SCOPES[("github", "issue_comments")]),
    ("gitlab", "merge_requests"): Count("user_notes_count", "mr_notes", _numbered(
        "pull_request", "iid", "merge_request_iid")),
    ("gitlab", "issues"): Count("user_notes_count", "issue_notes",
                                _numbered("issue", "iid", "issue_iid")),
    ("bitbucket", "pullrequests"): Count("comment_count", "pr_comments", _numbered(
        "pull_request", "id", "pull_request_id")),
    ("jira", "issues"): Count("fields.comment.total", "comments", _jira_issue),
}

#: The header of a list's first page that gives the list's total (GitLab ``X-Total``, which
#: GitLab leaves out above 10,000 items: then nothing is compared).
TOTALS: dict[str, str] = {"gitlab": "X-Total"}


def _integer(value: Any) -> int | None:
    """An integer, or a string of digits (a header), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else None


def _extra_key(count: Count) -> tuple:
    return tuple((f.field, f.value) for f in count.extra)


def _dig(raw: Mapping[str, Any], path: str) -> Any:
    value: Any = raw
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


class Signals:
    """Count signals of one sync run (see the module docstring). :meth:`page` is handed every
    written page of a top-level list and notes the counts its items carry; :meth:`settle`,
    once all of a repository's lists are written (a count is compared only with the children
    every list has delivered), sweeps the children of each item whose count disagrees."""

    def __init__(self, ports: Ports, client: ProviderClient, plan: ProviderPlan,
                 tally: Tally | None = None, totals_period: timedelta | None = None) -> None:
        self._ports, self._client, self._plan = ports, client, plan
        #: how often a repository's list totals are asked (:mod:`.reconcile_totals`)
        self.totals_period = timedelta(hours=24) if totals_period is None else totals_period
        self._source = asked.source(plan.provider, client, ports.business, self.totals_period)
        self.tally = tally or Tally()
        self._noted: dict[tuple[str, int], tuple[Parent, Count, int]] = {}
        self._totals: dict[str, tuple[ListSpec, dict, int]] = {}

    def page(self, spec: ListSpec, ctx: Context, raws: list, params: Mapping[str, str],
             headers: Mapping[str, str] | None = None) -> None:
        """Note the counts of one page's items, and its list's total (:data:`TOTALS`)."""
        total = TOTALS.get(self._plan.provider)
        said = _integer((headers or {}).get(total)) if total else None
        if said is not None and ctx.repository is not None and not spec.full:
            self._totals.setdefault(spec.name, (spec, dict(params), said))
        count = COUNTS.get((self._plan.provider, spec.name))
        if count is None or ctx.repository is None:
            return
        for raw in raws:
            said = _integer(_dig(raw, count.field))
            parent = count.parent(raw, params) if isinstance(raw, dict) else None
            if said is not None and parent is not None:
                self._noted.setdefault((parent.kind, parent.number), (parent, count, said))

    def discard(self) -> None:
        """Forget what was noted (the repository's lists did not all finish)."""
        self._noted.clear()
        self._totals.clear()

    def settle(self, ctx: Context, missing: set[tuple[str, int]] = frozenset(),
               params: Mapping[str, str] | None = None) -> None:
        """Sweep the parents (and lists) whose count (total) is below what is stored.
        ``missing``: ``(kind, number)`` of parents whose children the provider refused
        (:mod:`shared.fetch.pending` reads them again; their counts say nothing). Only the
        noted parents' live children are read (:meth:`_counts`: one query per
        :data:`~shared.adapters._documents.MAX_IN` parents), never the repository's other
        comments. Only a count *below* the store's is acted on: that is a
        deletion keyway missed, while a count above may include what keyway does not keep.
        ``params``: the repository's parameters, to ask its list totals with when due."""
        noted = [n for key, n in self._noted.items() if key not in missing]
        totals, self._noted, self._totals = list(self._totals.values()), {}, {}
        stored = self._counts(ctx, noted)
        for parent, count, said in noted:
            pid = parent_id(ctx, parent.kind, parent.number)
            if said < stored.get((pid, _extra_key(count)), 0):
                self._sweep(ctx, parent, count)
        for spec, params, said in totals:
            if said < self._live_of(ctx, spec):
                self._sweep_list(ctx, spec, params)
        if params is not None:
            self._ask_totals(ctx, params)

    def _live_of(self, ctx: Context, spec: ListSpec) -> int:
        return len(self._ports.business.query(spec.kind, [
            Filter("connection", "==", ctx.connection), Filter("deleted", "==", False),
            Filter("repository", "==", ctx.repository)]))

    def _ask_totals(self, ctx: Context, params: Mapping[str, str]) -> None:
        """The provider's totals of lists no page carries the total of, when due
        (:mod:`.reconcile_totals`); one below its live records stored: that list is swept."""
        if self._source is None:
            return
        now = isoformat(self._ports.clock.now())
        before = self._source.requests, getattr(self._source, "points", 0)
        said = self._source.said(ctx, params, now)
        self.tally.requests += self._source.requests - before[0]
        self.tally.points += getattr(self._source, "points", 0) - before[1]
        if said is None:
            return
        for spec in self._plan.resources:
            if spec.name in said and said[spec.name] < self._live_of(ctx, spec):
                self._sweep_list(ctx, spec, params)
        asked.counted(self._ports.business, ctx, now, self.totals_period)

    def _sweep_list(self, ctx: Context, spec: ListSpec, params: Mapping[str, str]) -> None:
        self.tally.targeted += 1
        now = isoformat(self._ports.clock.now())
        try:
            sweep(self._ports.business, self._client, now, spec, ctx, params, self.tally,
                  extra=SCOPES.get((self._plan.provider, spec.name), ()))
        except PermanentError as e:
            self._refused(ctx, spec, e)

    def _refused(self, ctx: Context, spec: ListSpec, error: PermanentError) -> None:
        self.tally.requests += 1
        log.warning("fetch.reconcile_refused", extra={"fields": {
            "connection": ctx.connection, "repository": ctx.repository, "list": spec.name,
            "reason": error.key}})

    def _live(self, ctx: Context, *where: Filter) -> list:
        return self._ports.business.query("comments", [
            Filter("connection", "==", ctx.connection), Filter("deleted", "==", False),
            Filter("repository", "==", ctx.repository), *where])

    def _counts(self, ctx: Context, noted: list[tuple[Parent, Count, int]]) -> Counter:
        """The live children stored per ``(parent id, extra key)`` of the ``noted`` parents
        only: per kind of children (the :class:`Count`'s ``extra`` filters), one query per
        :data:`~shared.adapters._documents.MAX_IN` parents (``parent in [...]``: equality
        filters only, so no composite index)."""
        scopes: dict[tuple, tuple[tuple[Filter, ...], list[str]]] = {}
        for parent, count, _ in noted:  # one entry per (kind, number): ids are distinct
            scopes.setdefault(_extra_key(count), (count.extra, []))[1].append(
                parent_id(ctx, parent.kind, parent.number))
        found: Counter = Counter()
        for key, (extra, pids) in scopes.items():
            for start in range(0, len(pids), MAX_IN):
                chunk = pids[start:start + MAX_IN]
                for snap in self._live(ctx, Filter("parent", "in", chunk), *extra):
                    found[(snap.data.get("parent"), key)] += 1
        return found

    def _sweep(self, ctx: Context, parent: Parent, count: Count) -> None:
        spec = count.child if isinstance(count.child, ListSpec) else \
            self._plan.children.get(count.child)
        if not isinstance(spec, ListSpec):
            return
        self.tally.targeted += 1
        now = isoformat(self._ports.clock.now())
        try:
            sweep(self._ports.business, self._client, now, spec, ctx, parent.path_params,
                  self.tally, parent, count.extra)
        except PermanentError as e:  # refused or gone: nothing is tombstoned on a guess
            self._refused(ctx, spec, e)
