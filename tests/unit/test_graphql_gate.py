"""Promise 5 for GraphQL: only named, vetted documents that select no code field can be sent.

The provider table names each document (SHA-256, variables, every selected field path); the
documents' text lives in ``shared/fetch/github/graphql.py``. These tests parse every allowed
document with the gate's own tokenizer and prove it selects no forbidden field, that it
selects exactly the fields listed here (an explicit allow-list, independent of the table), and
that the table refuses entries that would read code.
"""

from __future__ import annotations

import copy
import json

import pytest

from shared.errors import ConfigError
from shared.fetch.github.graphql import DOCUMENTS
from shared.fetch.gitlab.graphql import DOCUMENTS as GITLAB_DOCUMENTS
from shared.providers import graphql as gql
from shared.providers import registry
from shared.providers.registry import DEFAULT_TABLE
from shared.providers.schema import parse as parse_table

GITHUB = registry.get("github")

# What each document may read, field by field: reviewer, verdict, time, link, paging, points.
REVIEW = {"nodes", "fullDatabaseId", "state", "submittedAt", "url", "author", "login", "...User",
          "...Bot", "...Mannequin", "databaseId"}
ALLOWED_FIELDS = {
    "pull_request_reviews": {"nodes", "...PullRequest", "id", "number", "reviews",
                             "pageInfo", "hasNextPage", "endCursor", "rateLimit", "cost",
                             "remaining", "resetAt"} | REVIEW,
    "pull_request_reviews_page": {"node", "...PullRequest", "id", "number", "reviews",
                                  "pageInfo", "hasNextPage", "endCursor", "rateLimit",
                                  "cost", "remaining", "resetAt"} | REVIEW,
    # list totals only: no item of any connection is selected
    "repository_totals": {"nodes", "...Repository", "id", "issues", "pullRequests", "labels",
                          "totalCount", "rateLimit", "cost", "remaining", "resetAt"},
}
# Beyond FORBIDDEN_FIELDS: names that would read bodies or file data we never store.
NEVER = {"body", "bodyText", "bodyHTML", "object", "Blob", "text", "Tree", "entries", "file",
         "files", "contents", "diff", "patch", "commit", "commits", "history", "target",
         "repository", "changedFiles", "additions", "deletions"}


def table() -> dict:
    return json.loads(DEFAULT_TABLE.read_text())


def rejected(data: dict) -> str:
    with pytest.raises(ConfigError) as error:
        parse_table(data)
    return str(error.value.detail)


def names(text: str) -> set[str]:
    return {path.rsplit("/", 1)[-1] for path in gql.paths(gql.parse(text).selections)}


# ---- the allowed documents ------------------------------------------------------------------
def test_every_document_in_code_is_in_the_table_and_the_other_way_round():
    assert set(DOCUMENTS) == set(GITHUB.api.graphql.documents) == set(ALLOWED_FIELDS)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_each_allowed_document_selects_no_forbidden_field(name):
    selected = gql.paths(gql.parse(DOCUMENTS[name]).selections)
    for path in selected:
        for segment in path.split("/"):
            assert segment.removeprefix("...").lower() not in gql.FORBIDDEN_FIELDS, path
            assert segment.removeprefix("...") not in NEVER, path


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_each_allowed_document_selects_exactly_its_allowed_fields(name):
    assert names(DOCUMENTS[name]) == ALLOWED_FIELDS[name]


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_each_document_matches_its_table_entry_hash_variables_and_paths(name):
    entry = GITHUB.api.graphql.documents[name]
    operation = gql.vet(DOCUMENTS[name], entry.sha256, entry.variables, entry.selects)
    assert operation.kind == "query" and entry.sha256 == gql.sha256(DOCUMENTS[name])
    assert set(entry.selects) == set(gql.paths(operation.selections))


def test_the_batch_document_takes_node_ids_and_the_page_document_a_cursor():
    documents = GITHUB.api.graphql.documents
    assert dict(documents["pull_request_reviews"].variables) == {"ids": "[ID!]!"}
    assert dict(documents["pull_request_reviews_page"].variables) == {"id": "ID!",
                                                                     "after": "String!"}
    assert GITHUB.api.graphql.max_list_length == 100


def test_only_github_and_gitlab_have_graphql():
    assert [n for n, s in registry.load().items() if s.api.graphql] == ["github", "gitlab"]


@pytest.mark.parametrize("name", sorted(GITLAB_DOCUMENTS))
def test_each_gitlab_document_is_vetted_for_fetch_only_and_reads_no_code(name):
    graphql = registry.get("gitlab").api.graphql
    entry = graphql.documents[name]
    operation = gql.vet(GITLAB_DOCUMENTS[name], entry.sha256, entry.variables, entry.selects)
    assert operation.kind == "query" and entry.purposes == ("fetch",)
    assert not any(gql.forbidden_segment(p) for p in entry.selects)
    assert set(GITLAB_DOCUMENTS) == set(graphql.documents)


def test_gitlab_graphql_counts_against_the_api_limit_and_takes_100_iids():
    graphql = registry.get("gitlab").api.graphql
    assert graphql.resource == "core" and graphql.max_list_length == 100
    assert graphql.self_hosted_path == "/api/graphql"
    entry = graphql.documents["merge_request_children"]
    assert dict(entry.variables) == {"fullPath": "ID!", "iids": "[String!]!"}
    assert gql.check_variables(entry.variables, {"fullPath": "g/p", "iids": ["1"] * 100}, 100)
    with pytest.raises(gql.DocumentRefused):
        gql.check_variables(entry.variables, {"fullPath": "g/p", "iids": ["1"] * 101}, 100)


# ---- the gate's checks ----------------------------------------------------------------------
CODE_READERS = [
    "query($o: String!, $n: String!, $e: String!) { repository(owner: $o, name: $n) "
    "{ object(expression: $e) { ... on Blob { text } } } }",
    "query($id: ID!) { node(id: $id) { ... on Commit { tree { entries { name } } } } }",
    "query($id: ID!) { node(id: $id) { ... on PullRequest { files(first: 10) "
    "{ nodes { path } } } } }",
    "query($id: ID!) { node(id: $id) { ... on Ref { target { ... on Commit "
    "{ history(first: 1) { nodes { oid } } } } } } }",
    "query($id: ID!) { node(id: $id) { ... on Blob { byteSize } } }",
    "query($id: ID!) { node(id: $id) { ... on PullRequestReviewComment { diffHunk } } }",
]


@pytest.mark.parametrize("text", CODE_READERS)
def test_documents_that_read_code_are_found_by_the_deny_list(text):
    operation = gql.parse(text)
    selected = gql.paths(operation.selections)
    assert any(gql.forbidden_segment(p) for p in selected)
    with pytest.raises(gql.DocumentRefused, match="forbidden field"):
        gql.vet(text, gql.sha256(text), operation.variables, tuple(selected))


@pytest.mark.parametrize("text,why", [
    ("mutation { addComment(input: $i) { clientMutationId } }", "only query"),
    ("subscription { x }", "only query"),
    ("query { a: viewer { login } }", "aliases"),
    ("query { viewer @include(if: true) { login } }", "directives"),
    ("query { ...F } fragment F on Query { viewer { login } }", "named fragment"),
    ('query { repository(owner: "acme", name: "x") { id } }', "unsupported GraphQL syntax"),
    ("query { viewer { login } } query { viewer { id } }", "exactly one operation"),
    ("query($x: Int!) { viewer { login } }", "declared variable must be used"),
    ("query { node(id: $undeclared) { id } }", "declared variable must be used"),
    ("query($x: Int! = 3) { node(first: $x) { id } }", "defaults"),
    ("query { viewer { } }", "empty selection"),
    ("query " + "{ a " * 20 + "}" * 20, "nested deeper"),
])
def test_the_parser_refuses_what_it_cannot_vet(text, why):
    with pytest.raises(gql.DocumentRefused, match=why):
        gql.parse(text)


def test_a_tampered_text_fails_the_hash_even_if_it_parses():
    entry = GITHUB.api.graphql.documents["pull_request_reviews"]
    tampered = DOCUMENTS["pull_request_reviews"].replace(
        "number", "number body")
    with pytest.raises(gql.DocumentRefused, match="SHA-256"):
        gql.vet(tampered, entry.sha256, entry.variables, entry.selects)


def test_a_document_selecting_more_than_its_entry_lists_is_refused_even_with_its_hash():
    entry = GITHUB.api.graphql.documents["pull_request_reviews"]
    wider = DOCUMENTS["pull_request_reviews"].replace("number", "number title")
    with pytest.raises(gql.DocumentRefused, match="other fields"):
        gql.vet(wider, gql.sha256(wider), entry.variables, entry.selects)
    with pytest.raises(gql.DocumentRefused, match="other variables"):
        gql.vet(DOCUMENTS["pull_request_reviews"], entry.sha256, {"ids": "[ID!]"},
                entry.selects)


def test_a_forbidden_field_is_refused_even_if_the_entry_lists_it():
    text = "query($id: ID!) { node(id: $id) { ... on Blob { text } } }"
    selects = tuple(gql.paths(gql.parse(text).selections))
    with pytest.raises(gql.DocumentRefused, match="forbidden field"):
        gql.vet(text, gql.sha256(text), {"id": "ID!"}, selects)


@pytest.mark.parametrize("values,why", [
    ({"ids": ["A"], "owner": "acme"}, "undeclared"),
    ({}, "required"),
    ({"ids": []}, "list of 1 to 100"),
    ({"ids": ["A"] * 101}, "list of 1 to 100"),
    ({"ids": "A"}, "list of 1 to 100"),
    ({"ids": ["A B"]}, "without spaces"),
    ({"ids": [""]}, "without spaces"),
    ({"ids": [7]}, "without spaces"),
    ({"ids": ["x" * 2000]}, "without spaces"),
])
def test_variables_must_have_the_declared_names_and_types(values, why):
    with pytest.raises(gql.DocumentRefused, match=why):
        gql.check_variables({"ids": "[ID!]!"}, values, 100)


def test_variables_of_the_declared_types_pass_through_unchanged():
    declared = {"id": "ID!", "after": "String!", "first": "Int!", "maybe": "String"}
    values = {"id": "PR_1", "after": "Y3Vyc29y", "first": 100}
    assert gql.check_variables(declared, values, 100) == values
    with pytest.raises(gql.DocumentRefused, match="Int"):
        gql.check_variables(declared, {**values, "first": True}, 100)


# ---- the table refuses entries that would read code ---------------------------------------
def test_the_table_refuses_a_forbidden_selected_field():
    data = table()
    entry = data["providers"]["github"]["api"]["graphql"]["documents"]["pull_request_reviews"]
    entry["selects"].append("nodes/...Blob/text")
    assert "forbidden GraphQL field '...Blob'" in rejected(data)


@pytest.mark.parametrize("mutate,problem", [
    (lambda e: e.update(sha256="abc"), "expected lower-case hex SHA-256"),
    (lambda e: e["variables"].update(ids="JSON"), "expected one of"),
    (lambda e: e.update(query="{ viewer { login } }"), "unknown key"),
    (lambda e: e["selects"].append("nodes/../x"), "expected field path"),
])
def test_the_table_refuses_malformed_document_entries(mutate, problem):
    data = copy.deepcopy(table())
    mutate(data["providers"]["github"]["api"]["graphql"]["documents"]["pull_request_reviews"])
    assert problem in rejected(data)


def test_the_table_requires_the_self_hosted_graphql_path_for_a_self_hosted_api():
    data = table()
    data["providers"]["github"]["api"]["graphql"]["self_hosted_path"] = None
    assert "self_hosted_path" in rejected(data)
