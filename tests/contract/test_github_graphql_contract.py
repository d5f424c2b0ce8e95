"""Every GraphQL document keyway sends is valid against GitHub's public schema (npm
``@octokit/graphql-schema``, ``schema.graphql``), and the GitHub simulator's answers to them
fit their selections (:mod:`tests.contract._selection`).
"""

from __future__ import annotations

import functools
import json

import pytest
from graphql import GraphQLSchema, build_schema, parse, validate, validate_schema

from keyway.simulators import GitHubSimulator
from shared.fetch.github.graphql import DOCUMENTS
from shared.providers import registry
from tests.contract import _described
from tests.contract._selection import mismatches
from tests.contract._simulated import client

TABLE = registry.get("github").api.graphql.documents


# GitHub's published schema breaks two rules graphql-core 3.3 enforces and GitHub's server does
# not: two fields of EnterpriseOwnerInfo are defined twice (identically), and some
# implementations deprecate a field their interface does not (Project.id, PullRequest.databaseId…).
KNOWN_SCHEMA_FLAWS = (" can only be defined once.", " must not be deprecated.")


@functools.cache
def _schema() -> GraphQLSchema:
    """GitHub's schema, accepted once every complaint about it is one of the known flaws."""
    schema = build_schema(_described.github_sdl(), assume_valid_sdl=True)
    flaws = [e.message for e in validate_schema(schema)]
    unknown = [m for m in flaws if not m.endswith(KNOWN_SCHEMA_FLAWS)]
    assert not unknown, unknown[:10]
    schema._validation_errors = []  # graphql-core's cache: validate() re-checks nothing
    return schema


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return _schema()


def test_every_table_document_has_its_text_and_no_other_is_sent() -> None:
    assert set(TABLE) == set(DOCUMENTS)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid_against_githubs_public_schema(schema, name: str) -> None:
    errors = validate(schema, parse(DOCUMENTS[name]))
    assert not errors, [e.message for e in errors]


@pytest.fixture(scope="module")
def answers():
    """The simulator's answers (``data``) to each document, sent by keyway's client."""
    with GitHubSimulator() as sim:
        sim.seed_activity("acme", repos=1, prs=2, issues=0, comments=0, reviews=260)
        token = sim.mint_token(scopes=tuple(registry.get("github").oauth.scopes["app"]))
        api = client("github", sim.api_url, token.access_token)
        repo = {"owner": "acme", "repo": "repo-0001"}
        pulls = api.get("GET /repos/{owner}/{repo}/pulls", repo, {"state": "all"}).body
        first = api.graphql("pull_request_reviews", {"ids": [p["node_id"] for p in pulls]})
        busy = next(n for n in first.data["nodes"]
                    if n["reviews"]["pageInfo"]["hasNextPage"])
        page = api.graphql("pull_request_reviews_page", {
            "id": busy["id"], "after": busy["reviews"]["pageInfo"]["endCursor"]})
        repos = api.get("GET /user/repos", {}, {}).body
        totals = api.graphql("repository_totals", {"ids": [r["node_id"] for r in repos]})
        assert totals.data["nodes"] and all(totals.data["nodes"])
        yield {"pull_request_reviews": first.data, "pull_request_reviews_page": page.data,
               "repository_totals": totals.data}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_simulator_answer_fits_the_selection(schema, answers, name: str) -> None:
    data = answers[name]
    problems = mismatches(schema, DOCUMENTS[name], data)
    assert not problems, problems[:20]


def test_a_null_where_the_schema_forbids_it_is_caught(schema, answers) -> None:
    """The selection check is not vacuous: a real answer with a non-null field nulled (or
    missing) fails it."""
    data = json.loads(json.dumps(answers["pull_request_reviews"]))
    review = next(n for n in data["nodes"] if n["reviews"]["nodes"])["reviews"]["nodes"][0]
    review["state"] = None  # PullRequestReviewState!
    del data["rateLimit"]["cost"]
    problems = mismatches(schema, DOCUMENTS["pull_request_reviews"], data)
    assert any(p.endswith("/state: null where the schema says PullRequestReviewState!")
               for p in problems), problems
    assert any("rateLimit/cost: selected but absent" in p for p in problems), problems


def test_a_document_outside_the_schema_is_caught(schema) -> None:
    """Document validation is not vacuous: a field GitHub's schema lacks is an error."""
    wrong = DOCUMENTS["pull_request_reviews"].replace("submittedAt", "submittedWhen")
    assert [e.message for e in validate(schema, parse(wrong))]
