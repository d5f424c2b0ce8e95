"""A part the provider refuses for good never loses the rest: the parents are written, the
status says what is missing and why, and the next sync reads exactly the missing children
(the lists answer 304) and clears the mark. A transient failure still fails the run as
before, and its resume finishes the work."""

from __future__ import annotations

import math

import pytest

from keyway.simulators import BitbucketSimulator, GitHubSimulator, GitLabSimulator
from keyway.simulators.github_api import node_id
from shared.bootstrap import build
from shared.config import Config
from shared.fetch import pending, status
from shared.fetch.bitbucket.plan import PLAN as BITBUCKET_PLAN
from shared.fetch.errors import ProviderUnavailable
from shared.fetch.github.plan import PLAN as GITHUB_PLAN
from shared.fetch.gitlab.plan import REST_PLAN as GITLAB_REST_PLAN
from tests.integration.test_fetch_sync import count, counted, sync

CONNECTION = "conn-1"


@pytest.fixture
def ports(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))


def synced(ports, sim, plan, token: str):
    """One sync as fetch-P runs it: the lease, the run, the outcome in ``sync_status``."""
    owner = status.begin(ports, "t-1", CONNECTION)
    assert owner is not None
    try:
        result = sync(ports, sim, plan, token, connection=CONNECTION)
    except BaseException:
        status.end(ports, CONNECTION, owner, "failed", reason="fetch.error")
        raise
    status.end(ports, CONNECTION, owner, "done" if result.finished else "continuing",
               stats=vars(result.stats))
    return result


def sync_status(ports) -> dict:
    return ports.business.get("sync_status", CONNECTION)


# ---- GitHub: reviews through GraphQL ----------------------------------------------------------
@pytest.fixture
def github(leak_guard):
    with GitHubSimulator(rate_limit=1_000_000, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=2, prs=150, issues=20, comments=60, reviews=450)
        yield sim, sim.mint_token(scopes=("repo",)).access_token


def seeded(sim) -> tuple[set[str], int, int]:
    """Every pull request's node id, the reviews, and the follow-up pages they need."""
    acts = list(sim.activity.repos.values())
    ids = {node_id("011", "PullRequest", p) for a in acts for p in a.pulls.items}
    reviews = [len(r) for a in acts for r in a.reviews.values()]
    return ids, sum(reviews), sum(math.ceil(n / 100) - 1 for n in reviews if n > 100)


@pytest.mark.parametrize(("kind", "reason"), [("FORBIDDEN", "reviews.unavailable: permission"),
                                              (None, "reviews.unavailable: not_found")])
def test_refused_reviews_keep_the_pull_requests_and_are_read_next_sync_at_least_cost(
        ports, github, kind, reason):
    sim, token = github
    ids, reviews, follow_ups = seeded(sim)
    sim.refuse_graphql(kind)  # until healed: FORBIDDEN for the whole query, or GraphQL off
    first = synced(ports, sim, GITHUB_PLAN, token)
    assert first.finished and first.stats.missing == 150
    assert count(ports, "pull_requests") == 150 and count(ports, "reviews") == 0
    shown = sync_status(ports)
    assert shown["state"] == "done" and shown["degraded"] is True
    (missing,) = shown["missing"]
    assert missing["reason"] == reason and missing["child"] == "reviews"
    assert (missing["parents"], missing["repositories"]) == (150, 2)
    assert shown["started_at"] <= missing["first_seen"] <= shown["finished_at"]

    sim.clear_faults()
    retried, log, queries = counted(sim, lambda: synced(ports, sim, GITHUB_PLAN, token))
    assert retried.finished and retried.stats.retried == 150
    assert all(r.status == 304 for r in log if r.path != "/api/graphql")  # lists: unchanged
    asked = [i for q in queries for i in q["variables"].get("ids", [])]
    assert sorted(asked) == sorted(ids)  # each missing pull request once, nothing else
    assert len(queries) == 2 + follow_ups  # one batch per repository (≤ 100 each)
    assert count(ports, "reviews") == reviews
    healed = sync_status(ports)
    assert healed["degraded"] is False and healed["missing"] == []
    assert ports.business.query(pending.COLLECTION) == []

    _, log, queries = counted(sim, lambda: synced(ports, sim, GITHUB_PLAN, token))
    assert queries == [] and all(r.status == 304 for r in log)  # nothing left to retry


def test_reviews_still_refused_stay_missing_and_their_retries_back_off(ports, github):
    sim, token = github
    sim.refuse_graphql("FORBIDDEN")
    synced(ports, sim, GITHUB_PLAN, token)
    first_seen = sync_status(ports)["missing"][0]["first_seen"]
    again, log, _ = counted(sim, lambda: synced(ports, sim, GITHUB_PLAN, token))
    assert again.stats.retried == 150 and again.stats.missing == 150  # tried once more
    assert [r.path for r in log if r.status != 304] == ["/api/graphql"] * 2  # one a repository
    (missing,) = sync_status(ports)["missing"]
    assert missing["first_seen"] == first_seen and missing["parents"] == 150
    third, log, _ = counted(sim, lambda: synced(ports, sim, GITHUB_PLAN, token))
    assert third.stats.retried == 0 and all(r.status == 304 for r in log)  # waits an hour
    assert sync_status(ports)["degraded"] is True and sync_status(ports)["missing"] == [missing]


def test_a_graphql_outage_still_fails_the_run_and_its_resume_finishes(ports, github):
    sim, token = github
    sim.fail_next(503, count=20, path_prefix="/api/graphql")
    with pytest.raises(ProviderUnavailable):
        synced(ports, sim, GITHUB_PLAN, token)
    assert sync_status(ports)["state"] == "failed" and sync_status(ports)["missing"] == []
    assert ports.business.query(pending.COLLECTION) == []  # nothing recorded as missing
    assert count(ports, "pull_requests") < 150  # the page whose reviews failed is not written
    sim.clear_faults()
    assert synced(ports, sim, GITHUB_PLAN, token).finished
    assert count(ports, "pull_requests") == 150 and count(ports, "reviews") == seeded(sim)[1]
    assert sync_status(ports)["degraded"] is False


# ---- GitLab: notes per merge request over REST (the plan a connection falls back to) ----
@pytest.fixture
def gitlab(leak_guard):
    with GitLabSimulator(rate_limit=1_000_000, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme-group", repos=2, prs=40, issues=30, comments=400)
        yield sim, sim.mint_token(scopes=("read_api",)).access_token


def refused_merge_request(sim) -> tuple[str, int]:
    """The notes URL of one merge request with notes, and its iid."""
    act = next(iter(sim.activity.projects.values()))
    iid = next(i for (kind, i), notes in sorted(act.threads.items())
               if kind == "MergeRequest" and len(notes) > 2)
    return f"/api/v4/projects/{act.project['id']}/merge_requests/{iid}/notes", iid


def test_notes_refused_for_one_merge_request_keep_the_rest_and_are_read_next_sync(
        ports, gitlab, tmp_path):
    sim, token = gitlab
    path, iid = refused_merge_request(sim)
    sim.fail_next(403, count=1_000, path_prefix=path)
    first = synced(ports, sim, GITLAB_REST_PLAN, token)
    assert first.finished and first.stats.missing == 1
    assert count(ports, "pull_requests") == 40  # the refused one included
    (missing,) = sync_status(ports)["missing"]
    assert (missing["reason"], missing["parents"]) == ("mr_notes.unavailable: permission", 1)
    assert sync_status(ports)["degraded"] is True
    without = count(ports, "comments")

    sim.clear_faults()
    before = len(sim.requests_log)
    retried = synced(ports, sim, GITLAB_REST_PLAN, token)
    log = sim.requests_log[before:]
    assert retried.stats.retried == 1
    fetched = [r for r in log if r.status != 304]
    assert [r.path for r in fetched] == [path]  # only that merge request's notes
    assert len(log) == 1 + 2 * 3 + 1  # projects; per project MRs, issues, labels (304s)
    assert count(ports, "comments") > without
    assert sync_status(ports)["missing"] == [] and sync_status(ports)["degraded"] is False

    clean_ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "clean")}))
    clean = sync(clean_ports, sim, GITLAB_REST_PLAN, token)  # the same, never refused
    assert clean.finished and count(ports, "comments") == clean.stats.by_kind["comments"]


def test_a_transient_503_on_notes_still_fails_the_run_and_records_nothing(ports, gitlab):
    sim, token = gitlab
    path, _ = refused_merge_request(sim)
    sim.fail_next(503, count=20, path_prefix=path)
    with pytest.raises(ProviderUnavailable):
        synced(ports, sim, GITLAB_REST_PLAN, token)
    assert ports.business.query(pending.COLLECTION) == []
    assert sync_status(ports)["state"] == "failed"
    sim.clear_faults()
    assert synced(ports, sim, GITLAB_REST_PLAN, token).finished
    assert count(ports, "pull_requests") == 40 and sync_status(ports)["degraded"] is False



# ---- Bitbucket: a pull request's comments -----------------------------------------------------
@pytest.fixture
def bitbucket(leak_guard):
    with BitbucketSimulator(on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=1, prs=30, issues=10, comments=200)
        yield sim, sim.mint_token(scopes=("account", "pullrequest", "issue")).access_token


def test_comments_of_one_bitbucket_pull_request_not_found_are_read_next_sync(ports, bitbucket):
    sim, token = bitbucket
    (act,) = sim.activity.repos.values()
    number = next(n for (kind, n), ids in sorted(act.threads.items()) if kind == "pr" and ids)
    path = f"/2.0/repositories/{act.repo['full_name']}/pullrequests/{number}/comments"
    sim.fail_next(404, count=1_000, path_prefix=path)
    first = synced(ports, sim, BITBUCKET_PLAN, token)
    assert first.finished and count(ports, "pull_requests") == 30
    assert [(m["reason"], m["parents"]) for m in sync_status(ports)["missing"]] == [
        ("pr_comments.unavailable: not_found", 1)]
    without = count(ports, "comments")

    sim.clear_faults()
    before = len(sim.requests_log)
    retried = synced(ports, sim, BITBUCKET_PLAN, token)
    again = [r.path for r in sim.requests_log[before:]]
    assert retried.stats.retried == 1 and again.count(path) == 1
    assert not any("/comments" in p and p != path for p in again)  # no other child list
    assert count(ports, "comments") == without + len(act.threads[("pr", number)])
    assert sync_status(ports)["degraded"] is False
