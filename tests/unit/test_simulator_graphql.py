"""The GitHub simulator's GraphQL over real HTTP: keyway's review documents answered from the
same reviews the REST endpoint serves, GitHub's schema rules and error shapes, and a points
budget of its own with GitHub's rate-limit headers."""

from __future__ import annotations

import pytest
import requests

from keyway.simulators import GitHubSimulator
from keyway.simulators.github_api import node_id
from shared.fetch.github.graphql import DOCUMENTS

TIMEOUT = 5
REVIEWS, PAGE = DOCUMENTS["pull_request_reviews"], DOCUMENTS["pull_request_reviews_page"]


@pytest.fixture
def github(leak_guard):
    with GitHubSimulator(on_issue=leak_guard.track, graphql_rate_limit=50) as sim:
        sim.seed_activity("acme", repos=2, prs=20, issues=0, comments=0, reviews=120)
        sim.seed_activity("busy", repos=1, prs=1, issues=0, comments=0, reviews=230)
        yield sim


def post(sim, query: str, variables: dict, path: str = "/api/graphql") -> requests.Response:
    token = sim.mint_token().access_token
    return requests.post(sim.url + path, json={"query": query, "variables": variables},
                         headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


def pulls(sim, owner: str) -> list[tuple[str, str, int]]:
    """(repository full name, node id, number) of every pull request of ``owner``."""
    return [(act.name, node_id("011", "PullRequest", pid), item["number"])
            for act in sim.activity.repos.values() if act.name.startswith(owner + "/")
            for pid, item in sorted(act.pulls.items.items())]


def rest_reviews(sim, full_name: str, number: int, page: int = 1) -> list[dict]:
    token = sim.mint_token().access_token
    answer = requests.get(f"{sim.api_url}/repos/{full_name}/pulls/{number}/reviews",
                          params={"per_page": 100, "page": page},
                          headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    assert answer.status_code == 200
    return answer.json()


def test_reviews_by_node_id_are_the_reviews_rest_serves(github):
    listed = pulls(github, "acme")
    answer = post(github, REVIEWS, {"ids": [n for _, n, _ in listed]})
    assert answer.status_code == 200 and "errors" not in answer.json()
    nodes = answer.json()["data"]["nodes"]
    assert [(n["id"], n["number"]) for n in nodes] == [(i, num) for _, i, num in listed]
    total = 0
    for (full_name, _, number), node in zip(listed, nodes, strict=True):
        rest = rest_reviews(github, full_name, number)
        graph = node["reviews"]["nodes"]
        total += len(graph)
        assert [(g["fullDatabaseId"], g["state"], g["submittedAt"], g["url"],
                 g["author"]["login"], g["author"]["databaseId"]) for g in graph] == [
            (str(r["id"]), r["state"], r["submitted_at"], r["html_url"], r["user"]["login"],
             r["user"]["id"]) for r in rest]
        assert node["reviews"]["pageInfo"]["hasNextPage"] is False
    assert total == 120
    assert answer.json()["data"]["rateLimit"]["cost"] == 1


def test_a_pull_request_with_more_than_100_reviews_pages_by_cursor(github):
    ((full_name, ident, number),) = pulls(github, "busy")
    first = post(github, REVIEWS, {"ids": [ident]}).json()["data"]["nodes"][0]["reviews"]
    seen, info = [r["fullDatabaseId"] for r in first["nodes"]], first["pageInfo"]
    assert len(seen) == 100 and info["hasNextPage"] is True
    while info["hasNextPage"]:
        page = post(github, PAGE, {"id": ident, "after": info["endCursor"]}).json()
        connection = page["data"]["node"]["reviews"]
        seen += [r["fullDatabaseId"] for r in connection["nodes"]]
        info = connection["pageInfo"]
    rest = [r for page in (1, 2, 3) for r in rest_reviews(github, full_name, number, page)]
    assert seen == [str(r["id"]) for r in rest] and len(seen) == 230


def test_every_answer_spends_its_points_from_a_graphql_budget_apart_from_rest(github):
    ids = [n for _, n, _ in pulls(github, "acme")]
    rest_before = github.quota_used(github.account.id)
    first = post(github, REVIEWS, {"ids": ids[:1]})
    second = post(github, REVIEWS, {"ids": ids}, path="/api/v3/graphql")
    assert first.headers["X-RateLimit-Resource"] == "graphql"
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"],
            first.headers["X-RateLimit-Used"]) == ("50", "49", "1")
    assert second.headers["X-RateLimit-Remaining"] == "48"
    assert first.headers["X-RateLimit-Reset"] == second.headers["X-RateLimit-Reset"]
    assert second.json()["data"]["rateLimit"] == {"cost": 1, "remaining": 48,
                                                  "resetAt": second.json()["data"][
                                                      "rateLimit"]["resetAt"]}
    assert github.graphql_points_used(github.account.id) == 2
    assert github.quota_used(github.account.id) == rest_before  # REST untouched


def test_out_of_points_is_githubs_rate_limited_answer_and_spends_nothing(github):
    github.set_graphql_remaining(github.account.id, 0)
    answer = post(github, REVIEWS, {"ids": [pulls(github, "acme")[0][1]]})
    assert answer.status_code == 200
    assert answer.json()["errors"][0]["type"] == "RATE_LIMITED" and "data" not in answer.json()
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert github.graphql_points_used(github.account.id) == 50


def test_more_than_100_ids_is_an_argument_limit_error_without_data(github):
    ids = [pulls(github, "acme")[0][1]] * 101
    body = post(github, REVIEWS, {"ids": ids}).json()
    assert "data" not in body
    assert body["errors"][0]["type"] == "ARGUMENT_LIMIT"
    assert "more than 100 node ids" in body["errors"][0]["message"]


def test_an_unknown_id_is_null_with_a_not_found_error_at_its_path(github):
    real = pulls(github, "acme")[0][1]
    issue_like = node_id("010", "Repository", 1)
    body = post(github, REVIEWS, {"ids": [real, "bm90LWEtbm9kZQ==", issue_like]}).json()
    nodes = body["data"]["nodes"]
    assert nodes[0]["id"] == real and nodes[1] is None and nodes[2] is None
    assert [(e["type"], e["path"]) for e in body["errors"]] == [
        ("NOT_FOUND", ["nodes", 1]), ("NOT_FOUND", ["nodes", 2])]


@pytest.mark.parametrize("query,code", [
    ("query($ids: [ID!]!) { nodes(ids: $ids) { ... on PullRequest { reviews(first: 5) "
     "{ nodes { author { databaseId } } } } } }", "undefinedField"),  # not on Actor
    ("query($ids: [ID!]!) { nodes(ids: $ids) { number } }", "undefinedField"),  # a Node
    ("query($ids: [ID!]!) { nodes(ids: $ids) { ... on Blob { text } } }", "undefinedType"),
    ("query($ids: [ID!]!) { nodes(ids: $ids) { ... on PullRequest { files { path } } } }",
     "undefinedField"),
])
def test_fields_are_checked_against_githubs_schema(github, query, code):
    body = post(github, query, {"ids": [pulls(github, "acme")[0][1]]}).json()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == code


@pytest.mark.parametrize("first,kind", [(101, "EXCESSIVE_PAGINATION"),
                                        (None, "MISSING_PAGINATION_BOUNDARIES")])
def test_a_connection_needs_first_of_at_most_100(github, first, kind):
    bound = "" if first is None else f"(first: {first})"
    query = ("query($ids: [ID!]!) { nodes(ids: $ids) { ... on PullRequest { reviews" + bound
             + " { nodes { state } } } } }")
    body = post(github, query, {"ids": [pulls(github, "acme")[0][1]]}).json()
    assert "data" not in body and body["errors"][0]["type"] == kind


@pytest.mark.parametrize("first", [0, -1])
def test_a_connection_needs_first_of_at_least_1(github, first):
    """GitHub's node limits: ``first`` takes 1…100, on the reviews connection and on a
    repository's totals alike (keyway's documents ask ``first: 1`` and ``first: 100``)."""
    query = ("query($ids: [ID!]!) { nodes(ids: $ids) { ... on PullRequest { reviews(first: "
             f"{first}) {{ nodes {{ state }} }} }} }} }}")
    body = post(github, query, {"ids": [pulls(github, "acme")[0][1]]}).json()
    assert "data" not in body and body["errors"][0]["type"] == "INVALID_PAGINATION"
    act = github.activity.find("acme", "repo-0001")
    repo = act.repo["node_id"]
    query = ("query($ids: [ID!]!) { nodes(ids: $ids) { ... on Repository { issues(first: "
             f"{first}) {{ totalCount }} }} }} }}")
    body = post(github, query, {"ids": [repo]}).json()
    assert "data" not in body and body["errors"][0]["type"] == "INVALID_PAGINATION"
    totals = post(github, DOCUMENTS["repository_totals"], {"ids": [repo]}).json()
    assert "errors" not in totals and totals["data"]["nodes"][0]["pullRequests"] == {
        "totalCount": len(act.pulls.items)}


def test_a_transferred_repositorys_pull_requests_are_found_by_no_id(github):
    """After ``transfer`` the repository's items leave the store's index too: its pull
    request's node is ``NOT_FOUND`` and ``touch`` / ``delete`` no longer reach its items."""
    ((_, ident, number),) = pulls(github, "busy")
    act = github.activity.find("busy", "repo-0001")
    (pull_id,) = act.pulls.items
    review = act.reviews[number][0]["id"]
    repo = act.repo["node_id"]
    assert github.transfer("busy/repo-0001", "elsewhere")
    body = post(github, REVIEWS, {"ids": [ident, repo]}).json()
    assert body["data"]["nodes"] == [None, None]
    assert [(e["type"], e["path"]) for e in body["errors"]] == [
        ("NOT_FOUND", ["nodes", 0]), ("NOT_FOUND", ["nodes", 1])]
    assert github.activity.pull_by_id(pull_id) is None
    assert pull_id not in github.touch("pull", 1000)
    assert not github.delete("pull", pull_id) and not github.delete("review", review)


def test_bad_credentials_and_unparseable_documents(github):
    answer = requests.post(github.url + "/api/graphql", json={"query": REVIEWS},
                           headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT)
    assert answer.status_code == 401 and answer.json()["message"] == "Bad credentials"
    body = post(github, 'query { viewer(login: "x") { login } }', {}).json()
    assert body["errors"][0]["message"].startswith("Parse error")
    assert github.graphql_points_used(github.account.id) == 0


def test_queries_are_recorded_with_their_variables(github):
    ids = [n for _, n, _ in pulls(github, "acme")][:2]
    post(github, REVIEWS, {"ids": ids})
    assert github.graphql_queries == [{"operation": "PullRequestReviews",
                                       "variables": {"ids": ids}}]
