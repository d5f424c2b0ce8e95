"""Pages left per pagination style, the ETA formula, and how a run's progress document counts
and throttles its writes."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from requests.structures import CaseInsensitiveDict

from shared.clock import isoformat
from shared.fetch import status
from shared.fetch.client import ApiResponse
from shared.fetch.github.plan import PLAN as GITHUB
from shared.fetch.pages import pages_left
from shared.fetch.progress import Progress, eta
from shared.fetch.walk import Stats
from shared.freshness import complete_kinds, record_repository, summarize, tenant_view
from shared.records import store as records
from shared.records.model import Context, make
from tests.support import FakeClock

API = "https://api.github.com/repositories/1/pulls"


def link(**rels: int) -> dict[str, str]:
    return {"Link": ", ".join(f'<{API}?per_page=100&page={n}>; rel="{rel}"'
                              for rel, n in rels.items())}


@pytest.mark.parametrize("style, headers, body, left", [
    ("link_header", link(next=3, last=7), [], 5),  # pages 3..7 after page 2
    ("link_header", link(prev=6, first=1), [], 0),  # the last page
    ("link_header", {"Link": f'<{API}?cursor=abc>; rel="next"'}, [], None),  # a cursor
    ("keyset", {"X-Total-Pages": "4", "X-Page": "1", **link(next=2)}, [], 3),  # GitLab
    ("offset", {"X-Total-Pages": "4", "X-Page": "4", "X-Next-Page": ""}, [], 0),
    ("offset", {"X-Next-Page": "2"}, [], None),  # over 10,000 items GitLab sends no total
    ("next_url", {}, {"size": 120, "pagelen": 50, "page": 1, "next": "n", "values": []}, 2),
    ("next_url", {}, {"pagelen": 50, "page": 1, "next": "n", "values": []}, None),
    ("next_url", {}, {"values": []}, 0),
    ("body_cursor", {}, {"startAt": 0, "maxResults": 50, "total": 120,
                         "values": [{}] * 50}, 2),
    ("body_cursor", {}, {"issues": [{}], "nextPageToken": "t"}, None),  # /search/jql
    ("body_cursor", {}, {"issues": [{}], "isLast": True}, 0),
])
def test_pages_left_is_what_the_provider_says_and_none_when_it_does_not(style, headers, body,
                                                                       left):
    assert pages_left(style, CaseInsensitiveDict(headers), body) == left


BUDGET = {"limit": 5000, "remaining": 1100, "reserve": 100,
          "reset_at": "2030-01-01T00:10:00.000000Z"}
NOW = FakeClock().now()  # 2030-01-01T00:00:00Z, ten minutes before the reset


def test_eta_within_the_budget_is_the_requests_left_at_the_measured_pace():
    assert eta(500, 10.0, BUDGET, NOW) == 50.0
    assert eta(500, 10.0, None, NOW) == 50.0  # a budget never observed limits nothing
    assert eta(0, 10.0, BUDGET, NOW) == 0.0


def test_eta_past_the_spendable_budget_waits_for_the_reset():
    # 1,000 spendable take 100 s, then the run waits until the reset (600 s), then 500 more
    assert eta(1500, 10.0, BUDGET, NOW) == 600.0 + 50.0
    fast_reset = {**BUDGET, "reset_at": isoformat(NOW + timedelta(seconds=30))}
    assert eta(1500, 10.0, fast_reset, NOW) == 100.0 + 50.0


def test_eta_is_unknown_when_it_cannot_be_computed():
    assert eta(None, 10.0, BUDGET, NOW) is None  # pages left unknown
    assert eta(500, None, BUDGET, NOW) is None  # nothing measured yet
    assert eta(1000 + 4901, 10.0, BUDGET, NOW) is None  # more than one further window


def response(items: int, **headers: str) -> ApiResponse:
    return ApiResponse(200, [{}] * items, None, None, False, CaseInsensitiveDict(headers))


@pytest.fixture
def live(ports):
    ports = dataclasses.replace(ports, clock=FakeClock())
    owner = status.begin(ports, "t-1", "c-1")
    return ports, owner


def test_progress_counts_pages_and_walks_and_writes_at_most_every_interval(live):
    ports, owner = live
    stats = Stats()
    progress = Progress(ports, "c-1", owner, interval=5.0)
    progress.attach(stats, "link_header")
    repos, pulls = GITHUB.repositories, GITHUB.resources[0]
    stats.requests = 1
    progress.page(repos, response(2), exact=True, repository_level=False)
    progress.finished(repos, repository_level=False)
    progress.repositories({spec.name: 2 for spec in GITHUB.resources})
    written = ports.business.get("sync_status", "c-1")["progress"]
    assert written["walks_left"] is None  # written while the repositories list was open
    ports.clock.advance(1.0)
    stats.requests = 3  # the page and one GraphQL query for its reviews
    progress.page(pulls, response(100, **link(next=2, last=4)), exact=True,
                  repository_level=True)
    assert ports.business.get("sync_status", "c-1")["progress"] == written  # throttled
    ports.clock.advance(4.0)
    stats.requests = 5
    progress.page(pulls, response(100, **link(next=3, last=4)), exact=True,
                  repository_level=True)
    doc = ports.business.get("sync_status", "c-1")["progress"]
    entry = doc["lists"]["pulls"]
    assert (entry["items"], entry["pages"], entry["requests"], entry["pages_left"]) == (
        200, 2, 4, 2)
    assert doc["walks_left"] == 2 * len(GITHUB.resources) - 1 and doc["eta_is_lower_bound"]
    # R = 2 pages × 2 requests a page + 9 walks not opened = 13 at 5 requests in 5 s
    assert doc["requests_per_second"] == 1.0 and doc["eta_seconds"] == 13
    assert stats.lists["pulls"]["items"] == 200  # the counts last_run keeps


def test_a_walk_that_may_stop_early_shows_unknown_pages_and_no_eta(live):
    ports, owner = live
    stats = Stats()
    progress = Progress(ports, "c-1", owner, interval=0.0)
    progress.attach(stats, "link_header")
    progress.repositories({spec.name: 1 for spec in GITHUB.resources})
    ports.clock.advance(1.0)
    stats.requests = 1
    progress.page(GITHUB.resources[0], response(100, **link(next=2, last=9)), exact=False,
                  repository_level=True)
    doc = ports.business.get("sync_status", "c-1")["progress"]
    assert doc["lists"]["pulls"]["pages_left"] is None and doc["pages_left"] is None
    assert doc["eta_seconds"] is None


def test_progress_is_not_written_once_another_run_holds_the_lease(live):
    ports, owner = live
    status.end(ports, "c-1", owner, "done", stats={})
    progress = Progress(ports, "c-1", owner, interval=0.0)
    progress.attach(Stats(), "link_header")
    progress.write()
    assert "progress" not in ports.business.get("sync_status", "c-1")


def test_a_kind_is_complete_only_when_every_list_of_it_finished():
    lists = [("issue_comments", "comments"), ("review_comments", "comments"),
             ("pulls", "pull_requests"), ("pulls", "reviews")]
    finished = {"issue_comments": "2030-01-01T00:00:02.000000Z",
                "pulls": "2030-01-01T00:00:01.000000Z"}
    assert complete_kinds(lists, finished) == {"pull_requests": finished["pulls"],
                                               "reviews": finished["pulls"]}
    finished["review_comments"] = "2030-01-01T00:00:00.000000Z"
    assert complete_kinds(lists, finished)["comments"] == finished["review_comments"]


def test_a_summary_gives_the_oldest_time_and_counts_the_never_completed():
    repos = [{"fresh_as_of": {"issues": "2030-01-02T00:00:00.000000Z"}, "has_issues": True},
             {"fresh_as_of": {"issues": "2030-01-01T00:00:00.000000Z"}, "has_issues": True},
             {"has_issues": True}, {"has_issues": False}]
    summary = summarize(repos, lambda r: {"issues"} if r["has_issues"] else set(), None)
    assert summary == {"fresh_as_of": {"repositories": None,
                                       "issues": "2030-01-01T00:00:00.000000Z"},
                       "never": {"issues": 1}, "repositories": 4}


def test_the_tenant_view_leaves_out_other_tenants_and_disconnected_connections(ports):
    at = "2030-01-01T00:00:00.000000Z"
    for conn, tenant, state in (("a", "t-1", "active"), ("b", "t-1", "disconnected"),
                                ("c", "t-2", "active")):
        ports.business.put("connections", conn, {
            "tenant": tenant, "provider": "gitlab", "status": state,
            "freshness": {"fresh_as_of": {"issues": at}, "never": {"issues": 1}}})
    view = tenant_view(ports.business, "t-1")
    assert [c["connection"] for c in view["connections"]] == ["a"]
    assert view["fresh_as_of"] == {"issues": at} and view["never"] == {"issues": 1}


def repository(updated_at: str) -> dict:
    return make("repositories", Context("t-1", "github", "c-1"), external_id="1", name="r",
                full_name="o/r", private=False, archived=False, default_branch="main",
                owner=None, has_issues=True, node_id=None, url=None, created_at=None,
                updated_at=updated_at)


def test_fresh_as_of_moves_forward_only_and_survives_a_newer_provider_version(ports):
    older, newer = "2030-01-01T00:00:00.000000Z", "2030-01-02T00:00:00.000000Z"
    repo = repository(older)
    records.upsert(ports.business, repo)
    record_repository(ports.business, repo["id"], {"issues": newer})
    record_repository(ports.business, repo["id"], {"issues": older, "labels": older})
    assert ports.business.get("repositories", repo["id"])["fresh_as_of"] == {
        "issues": newer, "labels": older}
    assert records.upsert(ports.business, repository(newer))  # the provider changed it
    assert ports.business.get("repositories", repo["id"])["fresh_as_of"]["issues"] == newer
    records.mark_deleted(ports.business, "repositories", repo["id"],
                         "2030-01-03T00:00:00.000000Z")
    record_repository(ports.business, repo["id"], {"issues": "2030-01-04T00:00:00.000000Z"})
    assert ports.business.get("repositories", repo["id"])["fresh_as_of"]["issues"] == newer
