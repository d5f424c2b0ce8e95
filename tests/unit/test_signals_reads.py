"""What a sync's count signals (:mod:`shared.fetch.reconcile_signals`) read: only the live
children of the parents its pages noted, never the repository's other comments, however many
parents were noted (one query per ``MAX_IN`` of them); and the same parents are swept for the
same mismatches whether few or many were noted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import pytest

from shared.adapters._documents import MAX_IN
from shared.adapters.delegating import DelegatingStore
from shared.fetch import reconcile_signals
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import REST_PLAN as GITLAB_PLAN
from shared.fetch.reconcile_signals import Signals
from shared.ports import Filter, Order, Snapshot
from shared.records.model import Context, parent_id, record_id

TENANT, CONNECTION = "t-1", "conn-1"


class ReadCounter(DelegatingStore):
    """Counts the documents each collection's queries return, and the queries."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.read: Counter = Counter()
        self.queries: Counter = Counter()

    def query(self, collection: str, where: Sequence[Filter] = (),
              order_by: Sequence[Order] = (), limit: int | None = None) -> list[Snapshot]:
        found = self.inner.query(collection, where, order_by, limit)
        self.read[collection] += len(found)
        self.queries[collection] += 1
        return found


def context(provider: str) -> Context:
    return Context(TENANT, provider, CONNECTION, record_id(TENANT, provider, "repositories", "77"))


def store_comment(ports, ctx: Context, kind: str, number: int, i: int, *,
                  review: bool = False, deleted: bool = False) -> None:
    pid = parent_id(ctx, kind, number)
    ports.business.put("comments", f"{pid}-{'r' if review else 'c'}{i}", {
        "kind": "comments", "connection": ctx.connection, "repository": ctx.repository,
        "parent": pid, "review_comment": review, "deleted": deleted})


@pytest.fixture
def swept(monkeypatch) -> list[tuple[str, str, int]]:
    calls: list[tuple[str, str, int]] = []

    def sweep(store, client, now, spec, ctx, params, tally, parent=None, extra=()):
        calls.append((spec.name, parent.kind, parent.number))

    monkeypatch.setattr(reconcile_signals, "sweep", sweep)
    return calls


def signals(ports, plan) -> tuple[Signals, ReadCounter]:
    counter = ReadCounter(ports.business)
    return Signals(replace(ports, business=counter), object(), plan), counter


PER_ISSUE, ISSUES = 5, 200  # 1,000 issue comments stored, plus review comments


@pytest.fixture
def github_repository(ports) -> Context:
    """200 issues of 5 live issue comments each (1 tombstone more), and 2 review comments each
    under the pull requests 1-200 (same numbers, other parents)."""
    ctx = context("github")
    for number in range(1, ISSUES + 1):
        for i in range(PER_ISSUE):
            store_comment(ports, ctx, "issue", number, i)
        store_comment(ports, ctx, "issue", number, PER_ISSUE, deleted=True)
        for i in range(2):
            store_comment(ports, ctx, "pull_request", number, i, review=True)
    return ctx


def issues_spec(plan):
    return next(s for s in plan.resources if s.name == "issues")


@pytest.mark.parametrize("changed", [1, 20, 21, MAX_IN, MAX_IN + 1, 75])
def test_only_the_noted_parents_children_are_read(ports, github_repository, swept,
                                                   changed) -> None:
    ctx = github_repository
    sig, counter = signals(ports, GITHUB_PLAN)
    # the changed issues' counts: one below the store for every third (a missed deletion),
    # above it for every fifth (a comment keyway does not keep), equal otherwise
    said = {n: PER_ISSUE - (n % 3 == 0) + (n % 5 == 0) for n in range(1, changed + 1)}
    raws = [{"number": n, "comments": c} for n, c in said.items()]
    # a pull request in the issues list: its parent is the pull request (its 2 review comments
    # are not issue comments: stored issue comments 0 → not below a count of 0)
    raws.append({"number": 1, "pull_request": {}, "comments": 0})
    sig.page(issues_spec(GITHUB_PLAN), ctx, raws, {"owner": "acme", "repo": "r"})
    sig.settle(ctx)

    assert counter.read["comments"] == changed * PER_ISSUE  # not 1,000 (+400 review comments)
    assert counter.queries["comments"] == -(-(changed + 1) // MAX_IN)
    assert sorted(swept) == [("issue_comments", "issue", n) for n in sorted(said)
                             if n % 3 == 0 and n % 5 != 0]


def test_a_parent_without_stored_children_and_a_missing_parent(ports, github_repository,
                                                               swept) -> None:
    ctx = github_repository
    sig, counter = signals(ports, GITHUB_PLAN)
    raws = [{"number": n, "comments": 0} for n in range(1, 30)]  # every one below the store
    raws += [{"number": 9_999, "comments": 0}]  # nothing stored: nothing to compare
    sig.page(issues_spec(GITHUB_PLAN), ctx, raws, {"owner": "acme", "repo": "r"})
    sig.settle(ctx, missing={("issue", 2)})  # refused children: its count says nothing
    assert counter.read["comments"] == 28 * PER_ISSUE
    assert sorted(n for _, _, n in swept) == [1, *range(3, 30)]


def test_gitlab_issues_and_merge_requests_of_one_number_are_counted_apart(ports,
                                                                         swept) -> None:
    ctx = context("gitlab")
    for number in range(1, 41):
        for i in range(3):
            store_comment(ports, ctx, "issue", number, i)
        for i in range(4):
            store_comment(ports, ctx, "pull_request", number, i)
    sig, counter = signals(ports, GITLAB_PLAN)
    specs = {s.name: s for s in GITLAB_PLAN.resources}
    params = {"id": "77"}
    sig.page(specs["merge_requests"], ctx,
             [{"iid": n, "user_notes_count": 3 if n == 7 else 4} for n in range(1, 12)], params)
    sig.page(specs["issues"], ctx,
             [{"iid": n, "user_notes_count": 2 if n == 11 else 3} for n in range(1, 12)], params)
    sig.settle(ctx)
    assert counter.read["comments"] == 11 * 4 + 11 * 3  # of 280 stored
    assert counter.queries["comments"] == 1
    assert sorted(swept) == [("issue_notes", "issue", 11), ("mr_notes", "pull_request", 7)]
