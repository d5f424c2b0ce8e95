"""Reviews of changed pull requests in GraphQL batches (``shared/fetch/batch.py``) against the
GitHub simulator: up to 100 pull requests a query, more than 100 reviews followed page by page,
a pull request deleted since it was listed skipped, an answer about another node refused."""

from __future__ import annotations

import json
import math

import pytest
import requests

from keyway.simulators import GitHubSimulator
from shared.bootstrap import build
from shared.config import Config
from shared.fetch.batch import BatchFetcher
from shared.fetch.client import ProviderClient
from shared.fetch.errors import MalformedResponse, ProviderUnavailable, TokenRejected
from shared.fetch.github.plan import PLAN
from shared.fetch.walk import Stats
from shared.providers import registry
from shared.records.model import Context, record_id

SPEC = PLAN.children["reviews"]


@pytest.fixture
def github(leak_guard):
    with GitHubSimulator(on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=1, prs=250, issues=0, comments=0, reviews=600)
        sim.seed_activity("busy", repos=1, prs=2, issues=0, comments=0, reviews=330)
        yield sim


@pytest.fixture
def ports(tmp_path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)}))


def fetcher(sim, ports) -> BatchFetcher:
    client = ProviderClient(registry.get("github"), sim.api_url, sim.mint_token().access_token,
                            requests.Session(), ports.clock, timeout=5, purpose="fetch")
    return BatchFetcher(ports.business, client, Stats())


def parents(sim, owner: str) -> tuple[Context, list]:
    """The context and ``(raw, Parent)`` pairs of every pull request of ``owner``'s repo, the
    raw items as the REST list renders them."""
    (act,) = [a for a in sim.activity.repos.values() if a.name.startswith(owner + "/")]
    token = sim.mint_token().access_token
    raws = []
    for page in range(1, 4):
        raws += requests.get(f"{sim.api_url}/repos/{act.name}/pulls", timeout=5, params={
            "state": "all", "per_page": 100, "page": page},
            headers={"Authorization": f"Bearer {token}"}).json()
    params = PLAN.repo_params({"full_name": act.name})
    ctx = Context("t-1", "github", "conn-1", repository=record_id(
        "t-1", "github", "repositories", str(act.repo["id"])))
    return ctx, [(raw, PLAN.parent_of("reviews", raw, params)) for raw in raws]


def ids(pulls: list) -> list:
    """``(node id, Parent)`` of ``(raw, Parent)`` pairs, as :meth:`BatchFetcher.fetch` takes."""
    return [(SPEC.node_id(raw), parent) for raw, parent in pulls]


def seeded_reviews(sim, owner: str) -> int:
    return sum(len(r) for a in sim.activity.repos.values() if a.name.startswith(owner + "/")
               for r in a.reviews.values())


def stored_reviews(ports) -> int:
    return len(ports.business.query("reviews"))


def test_reviews_of_250_pull_requests_take_three_queries(github, ports):
    ctx, pulls = parents(github, "acme")
    batches = fetcher(github, ports)
    batches.fetch(SPEC, ctx, ids(pulls))
    assert len(pulls) == 250 and stored_reviews(ports) == seeded_reviews(github, "acme") == 600
    sizes = [len(q["variables"]["ids"]) for q in github.graphql_queries]
    assert sizes == [100, 100, 50]
    assert [r.path for r in github.requests_log].count("/api/graphql") == 3
    assert (batches.stats.graphql, batches.stats.graphql_points) == (3, 3)
    assert batches.stats.by_kind == {"reviews": 600} and batches.stats.requests == 3


def test_more_than_100_reviews_are_followed_page_by_page(github, ports):
    ctx, pulls = parents(github, "busy")
    counts = sorted(len(r) for a in github.activity.repos.values() for r in a.reviews.values()
                    if a.name.startswith("busy/"))
    batches = fetcher(github, ports)
    batches.fetch(SPEC, ctx, ids(pulls))
    assert stored_reviews(ports) == 330
    pages = sum(math.ceil(c / 100) - 1 for c in counts if c)
    operations = [q["operation"] for q in github.graphql_queries]
    assert operations == ["PullRequestReviews"] + ["PullRequestReviewsPage"] * pages
    assert pages >= 2


def test_writing_the_same_reviews_again_writes_nothing(github, ports):
    ctx, pulls = parents(github, "acme")
    fetcher(github, ports).fetch(SPEC, ctx, ids(pulls))
    again = fetcher(github, ports)
    again.fetch(SPEC, ctx, ids(pulls))
    assert again.stats.written == 0 and stored_reviews(ports) == 600


def test_a_pull_request_deleted_since_it_was_listed_is_skipped(github, ports):
    ctx, pulls = parents(github, "acme")
    gone = pulls[5][0]
    github.delete("pull", gone["id"])
    fetcher(github, ports).fetch(SPEC, ctx, ids(pulls[:10]))
    (act,) = [a for a in github.activity.repos.values() if a.name.startswith("acme/")]
    expected = sum(len(act.reviews.get(raw["number"], [])) for raw, _ in pulls[:10])
    assert stored_reviews(ports) == expected


@pytest.mark.parametrize("answer", [
    {"data": {"nodes": []}},  # fewer nodes than ids
    {"data": {"nodes": [{"id": "someone-else", "number": 1, "reviews": {"nodes": []}}]}},
    {"data": {"nodes": [{"id": "ID", "number": -1, "reviews": {"nodes": []}}]}},
    {"data": {"nodes": [{"id": "ID", "number": "N", "reviews": None}]}},
    {"data": {"nodes": [{"id": "ID", "number": "N", "reviews": {"nodes": [1]}}]}},
    {"data": {"nodes": [{"id": "ID", "number": "N", "reviews": {
        "nodes": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}}]}},
])
def test_an_answer_that_is_not_about_the_nodes_asked_for_is_refused(github, ports, answer):
    ctx, pulls = parents(github, "acme")
    raw, parent = pulls[0]
    body = json.dumps(answer).replace('"ID"', json.dumps(raw["node_id"])).replace(
        '"N"', str(parent.number))
    github.fail_next(200, body=body.encode(), path_prefix="/api/graphql")
    with pytest.raises(MalformedResponse):
        fetcher(github, ports).fetch(SPEC, ctx, ids(pulls[:1]))
    assert stored_reviews(ports) == 0


@pytest.mark.parametrize(("kind", "reason"), [
    ("FORBIDDEN", "permission"), ("NOT_FOUND", "not_found"), (None, "not_found")])
def test_a_refused_query_returns_its_pull_requests_and_the_others_are_read(github, ports,
                                                                           kind, reason):
    ctx, pulls = parents(github, "acme")
    github.refuse_graphql(kind, count=1)  # the first chunk of 100 only
    batches = fetcher(github, ports)
    failed = batches.fetch(SPEC, ctx, ids(pulls))
    assert [(node, parent) for node, parent, _ in failed] == ids(pulls[:100])
    assert {why for _, _, why in failed} == {reason}
    (act,) = [a for a in github.activity.repos.values() if a.name.startswith("acme/")]
    expected = sum(len(act.reviews.get(raw["number"], [])) for raw, _ in pulls[100:])
    assert stored_reviews(ports) == expected > 0
    assert [r.path for r in github.requests_log].count("/api/graphql") == 3


def test_a_refused_follow_up_page_misses_only_that_pull_request(github, ports):
    ctx, pulls = parents(github, "busy")
    github.stall_next(0.0, path_prefix="/api/graphql")  # the first query is answered
    github.refuse_graphql("FORBIDDEN", count=1)  # the first follow-up page is refused
    failed = fetcher(github, ports).fetch(SPEC, ctx, ids(pulls))
    assert len(failed) == 1 and failed[0][2] == "permission"
    (act,) = [a for a in github.activity.repos.values() if a.name.startswith("busy/")]
    lost = len(act.reviews[failed[0][1].number]) - 100  # its first page was read
    assert lost > 0 and stored_reviews(ports) == 330 - lost


@pytest.mark.parametrize(("status", "error"), [(401, TokenRejected),
                                               (503, ProviderUnavailable)])
def test_a_rejected_token_or_an_outage_still_raises(github, ports, status, error):
    ctx, pulls = parents(github, "acme")
    github.fail_next(status, count=5, path_prefix="/api/graphql")
    with pytest.raises(error):
        fetcher(github, ports).fetch(SPEC, ctx, ids(pulls[:1]))
    assert stored_reviews(ports) == 0


def test_one_pull_request_the_token_may_not_read_misses_only_its_reviews(github, ports):
    ctx, pulls = parents(github, "acme")
    chunk = ids(pulls[:3])
    client = fetcher(github, ports)._client
    nodes = client.graphql(SPEC.document, {"ids": [i for i, _ in chunk]}).data["nodes"]
    body = {"data": {"nodes": [nodes[0], None, nodes[2]]}, "errors": [
        {"type": "FORBIDDEN", "path": ["nodes", 1], "message": "SAML enforcement"}]}
    github.fail_next(200, body=json.dumps(body).encode(), path_prefix="/api/graphql")
    failed = fetcher(github, ports).fetch(SPEC, ctx, chunk)
    assert failed == [(chunk[1][0], chunk[1][1], "permission")]
    (act,) = [a for a in github.activity.repos.values() if a.name.startswith("acme/")]
    expected = sum(len(act.reviews.get(p.number, [])) for p in (chunk[0][1], chunk[2][1]))
    assert stored_reviews(ports) == expected > 0
