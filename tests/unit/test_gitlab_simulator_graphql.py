"""The GitLab simulator's GraphQL endpoint holds to GitLab's documented limits: at most 100
nodes a page, depth 20 and complexity 250 for an authenticated request, refused in GitLab's
words with no data; it answers keyway's vetted documents from the same store as REST, and is
metered and scoped like the REST API."""

from __future__ import annotations

import pytest
import requests

from keyway.simulators import GitLabSimulator
from keyway.simulators import gitlab_graphql_schema as schema
from keyway.simulators.gitlab_graphql import limits_errors
from keyway.simulators.oauth_model import Account
from shared.fetch.gitlab.graphql import DOCUMENTS
from shared.providers.graphql import parse

AUTHOR = Account("jdoe", 4242, "Jane Doe")


@pytest.fixture(scope="module")
def sim():
    with GitLabSimulator(rate_limit=1_000_000) as sim:
        sim.seed_activity("acme", repos=1, prs=20, issues=10, comments=100,
                          review_comments=20, reviews=15)
        act = next(iter(sim.activity.projects.values()))
        for i in range(150):
            sim.activity.add_note(act, "MergeRequest", 1, AUTHOR, f"note {i}")
        yield sim


@pytest.fixture(scope="module")
def token(sim):
    return sim.mint_token(scopes=("read_api",)).access_token


def ask(sim, token, query: str, variables: dict | None = None) -> requests.Response:
    return requests.post(f"{sim.url}/api/graphql", json={"query": query,
                         "variables": variables or {}},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)


def chain(levels: int, first: int, leaf: str = "id") -> str:
    """``project { mergeRequests(first) { nodes { project { … leaf } } } }`` ``levels`` deep."""
    inner = leaf
    for _ in range(levels):
        inner = f"mergeRequests(first: {first}) {{ nodes {{ project {{ {inner} }} }} }}"
    return f'query Chain($p: ID!) {{ project(fullPath: $p) {{ {inner} }} }}'


def test_a_document_deeper_than_20_is_refused_as_gitlab_answers(sim, token):
    deep = chain(6, 1, "mergeRequests(first: 1) { count }")
    assert schema.depth(parse(deep, 64).selections) == 21
    answer = ask(sim, token, deep, {"p": "acme/project-0001"})
    assert answer.status_code == 200
    assert answer.json() == {"errors": [
        {"message": "Query has depth of 21, which exceeds max depth of 20"}]}


def test_a_document_of_depth_20_is_answered(sim, token):
    assert schema.depth(parse(chain(6, 1), 64).selections) == 20
    body = ask(sim, token, chain(6, 1), {"p": "acme/project-0001"}).json()
    assert "errors" not in body and body["data"]["project"]["mergeRequests"]["nodes"]


def test_a_document_over_complexity_250_is_refused_as_gitlab_answers(sim, token):
    # each level: project 1 + (nodes 1 + the level below + resolver 1) doubled by 100 items
    assert schema.complexity("Query", parse(chain(5, 100), 64).selections, {}) == 219
    assert limits_errors(parse(chain(5, 100), 64).selections, {}) == []  # 219: within
    answer = ask(sim, token, chain(6, 100), {"p": "acme/project-0001"})
    assert answer.status_code == 200
    assert answer.json() == {"errors": [
        {"message": "Query has complexity of 443, which exceeds max complexity of 250"}]}


def test_asking_by_iids_does_not_raise_the_complexity(sim, token):
    by_iids = "query($p: ID!, $i: [String!]!) { project(fullPath: $p) { " \
              "mergeRequests(iids: $i, first: 100) { nodes { iid } } } }"
    listed = by_iids.replace("iids: $i, ", "").replace(", $i: [String!]!", "")
    # project 1 + mergeRequests (nodes 1 + iid 1 + resolver 1), doubled only without iids
    assert schema.complexity("Query", parse(by_iids).selections, {"i": ["1"]}) == 4
    assert schema.complexity("Query", parse(listed).selections, {}) == 7


def test_keyways_documents_are_within_every_limit(sim, token):
    for name, text in DOCUMENTS.items():
        selections = parse(text).selections
        iids = {"iids": [str(i) for i in range(1, 101)]}
        assert schema.depth(selections) <= 20, name
        assert schema.complexity("Query", selections, iids) <= 250, name


def test_first_over_100_answers_100_nodes_and_a_next_page(sim, token):
    query = "query($p: ID!, $i: String!) { project(fullPath: $p) { mergeRequest(iid: $i) { " \
            "notes(first: 500) { nodes { id } pageInfo { hasNextPage endCursor } } } } }"
    notes = ask(sim, token, query, {"p": "acme/project-0001", "i": "1"}).json()[
        "data"]["project"]["mergeRequest"]["notes"]
    assert len(notes["nodes"]) == 100 and notes["pageInfo"]["hasNextPage"] is True


def test_a_field_the_schema_lacks_is_refused_with_no_data(sim, token):
    query = "query($p: ID!) { project(fullPath: $p) { repository { rootRef } } }"
    assert ask(sim, token, query, {"p": "acme/project-0001"}).json() == {"errors": [{
        "message": "Field 'repository' doesn't exist on type 'Project'",
        "extensions": {"code": "undefinedField", "typeName": "Project",
                       "fieldName": "repository"}}]}
    sim.graphql.lacking.add("MergeRequest.approvedBy")  # an older self-managed GitLab
    try:
        body = ask(sim, token, DOCUMENTS["merge_request_children"],
                   {"fullPath": "acme/project-0001", "iids": ["1"]}).json()
    finally:
        sim.graphql.lacking.clear()
    assert "data" not in body and body["errors"][0]["extensions"]["code"] == "undefinedField"


def test_an_unknown_project_is_null_without_an_error(sim, token):
    body = ask(sim, token, DOCUMENTS["issue_children"],
               {"fullPath": "acme/nothing-here", "iids": ["1"]}).json()
    assert body == {"data": {"project": None}}


def test_graphql_spends_the_same_per_minute_budget_as_rest(sim, token):
    rest = requests.get(f"{sim.api_url}/user", headers={"Authorization": f"Bearer {token}"},
                        timeout=10)
    graphql = ask(sim, token, DOCUMENTS["issue_children"],
                  {"fullPath": "acme/project-0001", "iids": ["1"]})
    assert int(graphql.headers["RateLimit-Remaining"]) == int(
        rest.headers["RateLimit-Remaining"]) - 1
    assert graphql.headers["RateLimit-Limit"] == rest.headers["RateLimit-Limit"]


def test_a_token_without_read_api_is_refused_before_anything_is_read(sim):
    profile_only = sim.mint_token(scopes=("read_user",)).access_token
    answer = ask(sim, profile_only, DOCUMENTS["issue_children"],
                 {"fullPath": "acme/project-0001", "iids": ["1"]})
    assert answer.status_code == 403 and answer.json()["error"] == "insufficient_scope"


def test_keyways_document_is_answered_from_the_rest_store(sim, token):
    act = next(iter(sim.activity.projects.values()))
    iid = next(i for (kind, i) in sorted(act.by_iid) if kind == "MergeRequest"
               and act.approvals.get(i))
    body = ask(sim, token, DOCUMENTS["merge_request_children"],
               {"fullPath": act.name, "iids": [str(iid), "99999"]}).json()
    (node,) = body["data"]["project"]["mergeRequests"]["nodes"]  # the unknown iid is left out
    rest = requests.get(f"{sim.api_url}/projects/{act.project['id']}/merge_requests/{iid}/"
                        "approvals", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).json()
    assert [u["username"] for u in node["approvedBy"]["nodes"]] == [
        a["user"]["username"] for a in rest["approved_by"]]
    assert node["iid"] == str(iid) and node["notes"]["nodes"][0]["id"].startswith(
        "gid://gitlab/Note/")
