"""What a sync could not read (``shared/fetch/pending.py``) and why
(``shared/fetch/errors.py``): the refusal vocabulary, the bounded per-repository record of
missing children, and the summary the status shows."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta

import pytest

from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.fetch import pending
from shared.fetch.errors import (
    EgressRefused,
    NotFoundAtProvider,
    ProviderRefused,
    ProviderUnavailable,
    TokenRejected,
    reason_or_raise,
    unavailable_reason,
)
from shared.fetch.plan import Parent

NOW, LATER = "2026-01-02T03:04:05.000000Z", "2026-01-03T03:04:05.000000Z"


@pytest.fixture
def store(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})).business


def pr(n: int) -> Parent:
    return Parent("pull_request", n, {"owner": "acme", "repo": "r", "pull_number": str(n)})


@pytest.mark.parametrize(("error", "reason"), [
    (NotFoundAtProvider("404"), "not_found"),
    (ProviderRefused("403", provider_status=403), "permission"),
    (ProviderRefused("graphql", types=("FORBIDDEN",)), "permission"),
    (ProviderRefused("422", provider_status=422), "refused"),
    (ProviderRefused("graphql", types=("undefinedField",)), "refused"),
    (TokenRejected("401"), None),
    (EgressRefused("not allowlisted"), None),
])
def test_only_a_refusal_of_the_part_itself_has_a_reason(error, reason):
    assert unavailable_reason(error) == reason
    if reason is None:
        with pytest.raises(type(error)):
            reason_or_raise(error)


def test_graphql_types_survive_a_copy_of_the_error():
    copy = deepcopy(ProviderRefused("x", types=("FORBIDDEN",)))
    assert copy.types == ("FORBIDDEN",) and unavailable_reason(copy) == "permission"


def test_refused_parents_are_remembered_then_taken_off_once_read(store):
    book = pending.PendingBook(store, "c-1", "round-1", NOW)
    book.settle("repo-a", "reviews", [pr(1)], [("N2", pr(2), "permission"),
                                               ("N3", pr(3), "not_found")])
    due = pending.PendingBook(store, "c-1", "round-2", LATER).due("repo-a", "reviews")
    assert [(i, p.number) for i, p in due] == [("N2", 2), ("N3", 3)]
    assert book.due("repo-a", "reviews") == []  # failed in this round: not retried again
    assert pending.summary(store, "c-1") == [
        {"child": "reviews", "reason": "reviews.unavailable: not_found", "parents": 1,
         "repositories": 1, "first_seen": NOW},
        {"child": "reviews", "reason": "reviews.unavailable: permission", "parents": 1,
         "repositories": 1, "first_seen": NOW}]
    later = pending.PendingBook(store, "c-1", "round-2", LATER)
    later.settle("repo-a", "reviews", [pr(2)], [("N3", pr(3), "permission")])
    (still,) = pending.summary(store, "c-1")
    assert (still["reason"], still["parents"], still["first_seen"]) == (
        "reviews.unavailable: permission", 1, NOW)  # first seen stays
    later.settle("repo-a", "reviews", [pr(3)], [])
    assert store.query(pending.COLLECTION) == [] and pending.summary(store, "c-1") == []


def test_nothing_is_written_when_nothing_was_missing(store):
    book = pending.PendingBook(store, "c-1", "round-1", NOW)
    book.settle("repo-a", "mr_notes", [pr(1), pr(2)], [])
    assert store.query(pending.COLLECTION) == []


def test_a_document_holds_one_bucket_of_parent_numbers_and_nothing_is_dropped(store):
    book = pending.PendingBook(store, "c-1", "round-1", NOW)
    numbers = range(1, 2 * pending.BUCKET + 2)
    book.settle("repo-a", "reviews", [], [(f"N{n}", pr(n), "permission") for n in numbers])
    sizes = sorted(len(s.data["parents"]) for s in store.query(pending.COLLECTION))
    assert sizes == [2, pending.BUCKET - 1, pending.BUCKET]  # 1-499, 500-999, 1000-1001
    assert pending.summary(store, "c-1")[0]["parents"] == len(numbers)
    again = pending.PendingBook(store, "c-1", "round-2", LATER)
    assert [p.number for _, p in again.due("repo-a", "reviews")] == list(numbers)
    again.settle("repo-a", "reviews", [pr(n) for n in numbers], [])
    assert store.query(pending.COLLECTION) == []


def test_the_summary_adds_up_repositories_and_keeps_the_earliest_first_seen(store):
    pending.PendingBook(store, "c-1", "r1", LATER).settle(
        "repo-a", "mr_notes", [], [(None, pr(1), "permission")])
    pending.PendingBook(store, "c-1", "r0", NOW).settle(
        "repo-b", "mr_notes", [], [(None, pr(7), "permission"), (None, pr(8), "permission")])
    pending.PendingBook(store, "c-2", "r0", NOW).settle(
        "repo-c", "mr_notes", [], [(None, pr(1), "permission")])  # another connection
    assert pending.summary(store, "c-1") == [{
        "child": "mr_notes", "reason": "mr_notes.unavailable: permission", "parents": 3,
        "repositories": 2, "first_seen": NOW}]


def test_repositories_that_are_gone_are_forgotten(store):
    book = pending.PendingBook(store, "c-1", "r1", NOW)
    book.settle("repo-a", "reviews", [], [("N1", pr(1), "permission")])
    book.settle("repo-b", "reviews", [], [("N1", pr(1), "permission")])
    book.keep_only({"repo-b"})
    assert [s.data["repository"] for s in store.query(pending.COLLECTION)] == ["repo-b"]
    assert book.due("repo-a", "reviews") == []


def test_refused_totals_show_per_reason_for_repositories_still_within_reach(store):
    """``reconcile_totals.settle`` remembers a refused count on ``reconcile_state``; the
    summary counts the repositories still live, and forgets one tombstoned meanwhile."""
    from shared.fetch.reconcile_totals import settle

    for rid in ("r1", "r2", "r3", "r9"):
        store.put("repositories", rid, {"connection": "c2" if rid == "r9" else "c1",
                                        "deleted": rid == "r3"})
    settle(store, "r1", "c1", NOW, ProviderRefused("403", provider_status=403))
    settle(store, "r2", "c1", LATER, ProviderRefused("403", provider_status=403))
    settle(store, "r3", "c1", NOW, NotFoundAtProvider("404"))
    settle(store, "r2", "c1", "2027-01-01T00:00:00.000000Z",
           ProviderRefused("403", provider_status=403))  # refused again: since unchanged
    settle(store, "r9", "c2", NOW, ProviderRefused("400", provider_status=400))  # other conn.
    [shown] = pending.summary(store, "c1")
    assert shown == {"child": "totals", "reason": "totals.unavailable: permission",
                     "parents": 0, "repositories": 2, "first_seen": NOW}
    settle(store, "r1", "c1", LATER, ProviderUnavailable("503"))  # transient: unchanged
    assert pending.summary(store, "c1") == [shown]
    settle(store, "r1", "c1", LATER, None)  # answered
    settle(store, "r2", "c1", LATER, None)
    assert pending.summary(store, "c1") == []


def test_a_part_refused_again_backs_off_instead_of_costing_every_sync(store):
    def at(round_: str, hours: float) -> pending.PendingBook:
        moment = datetime(2026, 1, 2, tzinfo=UTC) + timedelta(hours=hours)
        return pending.PendingBook(store, "c-1", round_, isoformat(moment))

    refused = [(None, pr(4), "permission")]
    at("r1", 0).settle("repo-a", "mr_notes", [], refused)
    assert at("r2", 0.1).due("repo-a", "mr_notes")  # the next sync retries at once
    at("r2", 0.1).settle("repo-a", "mr_notes", [], refused)  # refused again
    assert not at("r3", 0.5).due("repo-a", "mr_notes")  # then waits an hour
    assert at("r3", 1.2).due("repo-a", "mr_notes")
    at("r3", 1.2).settle("repo-a", "mr_notes", [], refused)
    assert not at("r4", 2.5).due("repo-a", "mr_notes")  # two hours
    assert at("r4", 3.3).due("repo-a", "mr_notes")
    for n in range(5, 12):
        at(f"r{n}", 100 * n).settle("repo-a", "mr_notes", [], refused)
    assert not at("r99", 100 * 11 + 23).due("repo-a", "mr_notes")
    assert at("r99", 100 * 11 + 24).due("repo-a", "mr_notes")  # never more than a day
