"""Reading list totals (:mod:`shared.fetch.reconcile_totals`): a count is a non-negative
integer or nothing; a GitHub repository's totals need all three connections' ``totalCount``;
a due time is kept apart from the full sweep's and a zero period is always due."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.fetch import reconcile_state
from shared.fetch import reconcile_totals as totals
from shared.records.model import Context


@pytest.mark.parametrize("body,expected", [
    ({"count": 0}, 0), ({"count": 153}, 153), ({"count": -1}, None), ({"count": True}, None),
    ({"count": "3"}, None), ({"count": 1.5}, None), ({}, None), ([], None), (None, None),
])
def test_a_count_is_a_non_negative_integer(body, expected) -> None:
    assert totals._count(body) == expected


def test_github_totals_need_every_connection() -> None:
    item = {"id": "R_1", "issues": {"totalCount": 4}, "pullRequests": {"totalCount": 2},
            "labels": {"totalCount": 9}}
    assert totals._github_totals(item) == {"issues": 4, "pulls": 2, "labels": 9}
    for broken in ({**item, "labels": None}, {**item, "issues": {"totalCount": "4"}},
                   {**item, "pullRequests": {}}, {"id": "R_1"}):
        assert totals._github_totals(broken) is None


def test_jira_count_body_is_the_project_by_id() -> None:
    assert totals.QUERIES["jira"].body({"project": "10001"}) == {"jql": "project = 10001"}
    with pytest.raises(ValueError):
        totals.QUERIES["jira"].body({"project": "X) OR (1=1"})


class Store:
    def __init__(self) -> None:
        self.docs: dict = {}

    def get(self, collection, key):
        return self.docs.get((collection, key))

    def put(self, collection, key, doc):
        self.docs[(collection, key)] = dict(doc)


def test_due_times_of_the_count_and_the_full_sweep_do_not_reset_each_other() -> None:
    store, day = Store(), timedelta(days=1)
    now = "2026-01-01T00:00:00.000000Z"
    assert totals.due(store, "r-1", "c-1", now, timedelta(0), "r-1") is True  # every sync
    assert totals.due(store, "r-1", "c-1", now, day, "r-1") is False  # first sight
    first = store.get("reconcile_state", "r-1")["totals_due_at"]
    assert now < first < "2026-01-02T00:00:00.000000Z"
    assert reconcile_state.is_due(store, "r-1", now, 7 * day, "c-1") is False  # its own
    state = store.get("reconcile_state", "r-1")
    assert state["totals_due_at"] == first and now < state["due_at"]
    assert totals.due(store, "r-1", "c-1", first, day, "r-1") is True
    totals.counted(store, Context("t", "jira", "c-1", repository="r-1"), first, day)
    assert store.get("reconcile_state", "r-1")["due_at"] == state["due_at"]
    assert totals.due(store, "r-1", "c-1", first, day, "r-1") is False
