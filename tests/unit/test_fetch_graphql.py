"""``ProviderClient.graphql`` against the GitHub simulator over real HTTP.

Promise 5: only a document the provider table names, whose text is exactly the vetted one, with
variables of the declared names and types, is ever sent — anything else raises EgressRefused
and the simulator's request log stays empty. GraphQL points are budgeted apart from REST
requests, and GraphQL errors (HTTP 200 with ``errors``) map onto the fetch error tree without
repeating the provider's message.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests

from keyway.simulators import GitHubSimulator
from keyway.simulators.github_api import node_id
from shared.bootstrap import build
from shared.config import Config
from shared.fetch import _graphql
from shared.fetch.budget import TokenBudget, budget_key
from shared.fetch.client import ProviderClient
from shared.fetch.errors import (
    BudgetExhausted,
    EgressRefused,
    MalformedResponse,
    NotFoundAtProvider,
    ProviderRefused,
    RateLimited,
)
from shared.fetch.github.graphql import DOCUMENTS
from shared.providers import registry
from tests.support import FakeClock

GITHUB, GITLAB = registry.get("github"), registry.get("gitlab")
REVIEWS, PAGE = "pull_request_reviews", "pull_request_reviews_page"
GRAPHQL_PATH = "/api/graphql"


class RecordingSession(requests.Session):
    """A real session that also remembers what each request carried."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, object]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        self.sent.append((method, url, kwargs.get("json")))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def github(clock, leak_guard):
    with GitHubSimulator(clock=lambda: clock.now().timestamp(),
                         on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=1, prs=30, issues=0, comments=0, reviews=90)
        yield sim


@pytest.fixture
def budget(tmp_path, clock) -> TokenBudget:
    store = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})).business
    return TokenBudget(store, clock, budget_key("github", "conn-1"), reserve=10)


@pytest.fixture
def session():
    with RecordingSession() as s:
        yield s


def client(sim, clock, session, budget=None, **options) -> ProviderClient:
    token = sim.mint_token().access_token
    return ProviderClient(options.pop("spec", GITHUB), sim.api_url, token, session, clock,
                          budget, timeout=5, **{"purpose": "fetch", **options})


@pytest.fixture
def gh(github, clock, session, budget) -> ProviderClient:
    return client(github, clock, session, budget)


def pull_ids(sim) -> list[str]:
    (act,) = sim.activity.repos.values()
    return [node_id("011", "PullRequest", p) for p in sorted(act.pulls.items)]


# ---- what is sent ---------------------------------------------------------------------------
def test_a_vetted_document_is_sent_exactly_once_as_written(gh, github, session):
    ids = pull_ids(github)[:3]
    answer = gh.graphql(REVIEWS, {"ids": ids})
    assert [n["id"] for n in answer.data["nodes"]] == ids and answer.missing == ()
    assert answer.cost == 1
    (sent,) = session.sent
    assert sent[0] == "POST" and sent[1] == github.url + GRAPHQL_PATH
    assert sent[2] == {"query": DOCUMENTS[REVIEWS], "variables": {"ids": ids}}
    (logged,) = github.requests_log
    assert (logged.method, logged.path, logged.status) == ("POST", GRAPHQL_PATH, 200)
    assert logged.headers["authorization"] == "Bearer"


def test_the_endpoint_is_graphql_beside_the_rest_base():
    assert _graphql.endpoint(GITHUB, urlsplit("https://api.github.com")) == \
        "https://api.github.com/graphql"
    assert _graphql.endpoint(GITHUB, urlsplit("https://ghe.example/api/v3")) == \
        "https://ghe.example/api/graphql"
    assert _graphql.endpoint(GITHUB, urlsplit("https://ghe.example/gh/api/v3")) == \
        "https://ghe.example/gh/api/graphql"


# ---- refused before anything is sent --------------------------------------------------------
@pytest.mark.parametrize("name", ["pull_request_files", "", "PULL_REQUEST_REVIEWS", None,
                                  "pull_request_reviews "])
def test_an_unknown_document_is_refused_with_nothing_sent(gh, github, name):
    with pytest.raises(EgressRefused) as refused:
        gh.graphql(name, {"ids": pull_ids(github)[:1]})  # type: ignore[arg-type]
    assert refused.value.status == 403 and github.requests_log == []


@pytest.mark.parametrize("tamper", [
    lambda t: t.replace("number", "number body"),  # one more field
    lambda t: t.replace("url\n", "url\n          body\n"),
    lambda t: t.replace("fullDatabaseId", "databaseId"),  # a field swapped
    lambda t: t + " ",  # not a byte may differ
    lambda t: 'query($ids: [ID!]!) { nodes(ids: $ids) { ... on Blob { text } } }',
])
def test_a_tampered_document_text_is_refused_with_nothing_sent(github, clock, session, tamper):
    texts = {**DOCUMENTS, REVIEWS: tamper(DOCUMENTS[REVIEWS])}
    tampered = client(github, clock, session, graphql_documents=texts)
    with pytest.raises(EgressRefused, match="pull_request_reviews"):
        tampered.graphql(REVIEWS, {"ids": pull_ids(github)[:1]})
    assert github.requests_log == [] and session.sent == []


def test_a_document_missing_from_code_is_refused(github, clock, session):
    partial = client(github, clock, session, graphql_documents={PAGE: DOCUMENTS[PAGE]})
    with pytest.raises(EgressRefused):
        partial.graphql(REVIEWS, {"ids": pull_ids(github)[:1]})
    assert github.requests_log == []


@pytest.mark.parametrize("variables", [
    {"ids": ["PR_x"], "owner": "acme"},  # an extra variable
    {"ids": ["PR_x"], "query": "{ viewer { login } }"},
    {},  # a missing one
    {"ids": "PR_x"},  # a wrong type
    {"ids": ["PR_x", 5]},
    {"ids": ["PR x"]},
    {"ids": ["PR_x"] * 101},  # more than GitHub takes
    {"ids": []},
])
def test_variables_outside_the_declaration_are_refused_with_nothing_sent(gh, github,
                                                                         variables):
    with pytest.raises(EgressRefused):
        gh.graphql(REVIEWS, variables)
    assert github.requests_log == []


def test_the_page_document_takes_exactly_an_id_and_a_cursor(gh, github):
    with pytest.raises(EgressRefused):
        gh.graphql(PAGE, {"id": pull_ids(github)[0]})
    with pytest.raises(EgressRefused):
        gh.graphql(PAGE, {"ids": pull_ids(github)[:1], "after": "Y3Vyc29yOjA="})
    assert github.requests_log == []
    assert gh.graphql(PAGE, {"id": pull_ids(github)[0], "after": "Y3Vyc29yOjA="}).data


def test_a_provider_without_graphql_refuses_every_document(github, clock, session):
    as_gitlab_table = client(github, clock, session, spec=GITLAB)
    with pytest.raises(EgressRefused):
        as_gitlab_table.graphql(REVIEWS, {"ids": pull_ids(github)[:1]})
    assert github.requests_log == []


# ---- budgets: GraphQL points apart from REST requests ---------------------------------------
def test_graphql_answers_are_budgeted_apart_from_rest(gh, github, budget):
    gh.graphql(REVIEWS, {"ids": pull_ids(github)[:2]})
    points = budget.for_resource("graphql").snapshot()
    assert github.requests_log[-1].status == 200
    assert points["key"] == budget_key("github", "conn-1", resource="graphql")
    assert (points["limit"], points["remaining"], points["in_flight"]) == (5000, 4999, 0)
    assert budget.snapshot()["remaining"] is None  # REST's budget saw nothing
    gh.get("GET /user")
    assert budget.snapshot()["remaining"] == 4999
    assert budget.for_resource("graphql").snapshot()["remaining"] == 4999


def test_a_spent_rest_budget_does_not_block_graphql_nor_the_other_way_round(
        gh, github, budget, clock):
    reset = clock.now() + timedelta(hours=1)
    budget.observe(limit=5000, remaining=3, reset_at=reset)
    with pytest.raises(BudgetExhausted):
        gh.get("GET /user")
    assert gh.graphql(REVIEWS, {"ids": pull_ids(github)[:1]}).data["nodes"]
    budget.observe(limit=5000, remaining=5000, reset_at=reset + timedelta(hours=1))
    budget.for_resource("graphql").observe(limit=5000, remaining=2, reset_at=reset)
    before = len(github.requests_log)
    with pytest.raises(BudgetExhausted):
        gh.graphql(REVIEWS, {"ids": pull_ids(github)[:1]})
    assert len(github.requests_log) == before
    assert gh.get("GET /user").status == 200


def test_graphql_rate_limited_with_http_200_waits_for_the_graphql_reset(gh, github, budget,
                                                                       leak_guard):
    github.set_graphql_remaining(github.account.id, 0)
    with pytest.raises(RateLimited) as limited:
        gh.graphql(REVIEWS, {"ids": pull_ids(github)[:1]})
    (logged,) = github.requests_log
    assert logged.status == 200
    reset = int(logged.time) // 3600 * 3600 + 3600
    assert limited.value.retry_at.timestamp() == reset
    assert budget.for_resource("graphql").blocked_until() == limited.value.retry_at
    assert budget.blocked_until() is None  # REST is not blocked by GraphQL's limit
    assert leak_guard.exception_leaks(limited.value) == []


# ---- GraphQL errors map onto the error tree --------------------------------------------------
SECRET_IN_MESSAGE = "customer-private-repo-name-xyz"


@pytest.mark.parametrize("body,error,kind", [
    ({"data": None, "errors": [{"type": "NOT_FOUND", "path": ["nodes"],
                                "message": SECRET_IN_MESSAGE}]}, NotFoundAtProvider, None),
    ({"data": None, "errors": [{"type": "FORBIDDEN", "message": SECRET_IN_MESSAGE}]},
     ProviderRefused, "FORBIDDEN"),
    ({"errors": [{"message": SECRET_IN_MESSAGE, "extensions": {"code": "undefinedField"}}]},
     ProviderRefused, "undefinedField"),
    ({"data": None, "errors": [{"type": "ARGUMENT_LIMIT", "message": SECRET_IN_MESSAGE}]},
     ProviderRefused, "ARGUMENT_LIMIT"),
    ({"data": {"nodes": [None]}, "errors": [{"type": "FORBIDDEN",
                                             "message": SECRET_IN_MESSAGE}]},
     ProviderRefused, "FORBIDDEN"),  # with data, but about no node in it: the whole query
    ({"errors": [{"type": "RATE_LIMIT", "message": SECRET_IN_MESSAGE}]}, RateLimited, None),
    ({"errors": [{"type": "RATE_LIMITED", "message": SECRET_IN_MESSAGE}]}, RateLimited, None),
    ({"data": [1]}, MalformedResponse, None),
    ({"data": None}, MalformedResponse, None),
    ({"errors": "boom"}, MalformedResponse, None),
    ([SECRET_IN_MESSAGE], MalformedResponse, None),
])
def test_graphql_errors_map_to_the_error_tree_without_the_message(gh, github, caplog, body,
                                                                  error, kind):
    caplog.set_level(logging.DEBUG)
    github.fail_next(200, body=json.dumps(body).encode(), path_prefix=GRAPHQL_PATH)
    with pytest.raises(error) as raised:
        gh.graphql(REVIEWS, {"ids": pull_ids(github)[:1]})
    assert SECRET_IN_MESSAGE not in str(raised.value) and SECRET_IN_MESSAGE not in repr(
        raised.value)
    assert kind is None or kind in str(raised.value)
    assert all(SECRET_IN_MESSAGE not in r.getMessage()
               and SECRET_IN_MESSAGE not in str(getattr(r, "fields", "")) for r in caplog.records)
    assert len(github.requests_log) == 1  # errors in a 200 are not retried


def test_a_node_deleted_since_it_was_listed_is_a_null_entry_not_a_failure(gh, github):
    (act,) = github.activity.repos.values()
    gone = sorted(act.pulls.items)[1]
    ids = pull_ids(github)[:3]
    github.delete("pull", gone)
    answer = gh.graphql(REVIEWS, {"ids": ids})
    assert answer.data["nodes"][1] is None and answer.missing == (("nodes", 1),)
    assert [n["id"] for n in answer.data["nodes"] if n] == [ids[0], ids[2]]


def test_a_node_the_token_may_not_read_is_a_null_entry_and_the_others_are_kept(gh, github):
    ids = pull_ids(github)[:2]
    nodes = gh.graphql(REVIEWS, {"ids": ids}).data["nodes"]
    body = {"data": {"nodes": [nodes[0], None]}, "errors": [
        {"type": "FORBIDDEN", "path": ["nodes", 1], "message": SECRET_IN_MESSAGE}]}
    github.fail_next(200, body=json.dumps(body).encode(), path_prefix=GRAPHQL_PATH)
    answer = gh.graphql(REVIEWS, {"ids": ids})
    assert answer.data["nodes"] == [nodes[0], None]
    assert answer.forbidden == (("nodes", 1),) and answer.missing == ()


def test_server_errors_are_retried_because_a_query_only_reads(gh, github):
    github.fail_next(502, count=2, path_prefix=GRAPHQL_PATH)
    assert gh.graphql(REVIEWS, {"ids": pull_ids(github)[:1]}).data["nodes"]
    assert [r.status for r in github.requests_log] == [502, 502, 200]
