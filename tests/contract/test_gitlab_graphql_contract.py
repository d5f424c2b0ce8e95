"""The GitLab simulator answers each GraphQL document keyway sends (through keyway's own
``ProviderClient``, vetted) with every selected field, of the JSON type GitLab's GraphQL
reference gives it (``null`` only where the reference's type is nullable). No GitLab schema is
pinned here (``docs/PROVIDERS.md``): the types below are written from the reference page
"GraphQL API resources" (``Time`` and global ids are strings)."""

from __future__ import annotations

import pytest

from keyway.simulators import GitLabSimulator
from keyway.simulators.oauth_model import Account
from shared.fetch.gitlab.graphql import DOCUMENTS
from shared.providers import graphql as gql
from tests.contract._simulated import client

S, I, B, O = str, int, bool, dict  # noqa: E741 - JSON types
# the last segment of a field path (inline fragments dropped) → (JSON type, nullable)
TYPES = {
    "project": (O, True), "mergeRequests": (O, True), "issues": (O, True),
    "mergeRequest": (O, True), "issue": (O, True), "nodes": (list, True),
    "iid": (S, False), "updatedAt": (S, False), "notes": (O, False),
    "approvedBy": (O, True), "id": (S, False), "body": (S, False), "system": (B, False),
    "createdAt": (S, False), "author": (O, True), "username": (S, False),
    "position": (O, True), "newPath": (S, True), "oldPath": (S, True),
    "newLine": (I, True), "oldLine": (I, True), "diffRefs": (O, False),
    "headSha": (S, False), "pageInfo": (O, False), "hasNextPage": (B, False),
    "endCursor": (S, True),
}


@pytest.fixture(scope="module")
def seeded():
    with GitLabSimulator(rate_limit=1_000_000) as sim:
        sim.seed_activity("acme", repos=1, prs=12, issues=8, comments=80,
                          review_comments=30, reviews=12)
        act = next(iter(sim.activity.projects.values()))
        for i in range(105):  # a second page of notes for the page documents
            sim.activity.add_note(act, "MergeRequest", 1, Account("jdoe", 4242, "J"), f"{i}")
            sim.activity.add_note(act, "Issue", 1, Account("jdoe", 4242, "J"), f"{i}")
        token = sim.mint_token(scopes=("read_api",)).access_token
        yield client("gitlab", sim.api_url, token), act.name


def objects_at(data, path: list[str]) -> list[dict]:
    """Every object at ``path`` below ``data``, through lists (nulls end a branch)."""
    found = [data]
    for segment in path:
        found = [v.get(segment) for v in found if isinstance(v, dict)]
        found = [x for v in found for x in (v if isinstance(v, list) else [v])]
    return [v for v in found if isinstance(v, dict)]


def check(data, selects) -> list[str]:
    """Every selected field present in every object that holds it, of its type."""
    problems = []
    for select in selects:
        path = [s for s in select.split("/") if not s.startswith("...")]
        kind, nullable = TYPES[path[-1]]
        for holder in objects_at(data, path[:-1]):
            if path[-1] not in holder:
                problems.append(f"{select}: missing")
                continue
            value = holder[path[-1]]
            if value is None and not nullable or value is not None and not isinstance(
                    value, kind):
                problems.append(f"{select}: {value!r} is not a {kind.__name__}")
    return problems


def variables(name: str, full_path: str, api) -> dict:
    if name.endswith("_page"):
        first = api.graphql(name.replace("_notes_page", "_children"),
                            {"fullPath": full_path, "iids": ["1"]}).data
        kind = "mergeRequests" if name.startswith("merge") else "issues"
        cursor = first["project"][kind]["nodes"][0]["notes"]["pageInfo"]["endCursor"]
        return {"fullPath": full_path, "iid": "1", "after": cursor}
    return {"fullPath": full_path, "iids": [str(i) for i in range(1, 9)]}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_each_document_is_answered_with_every_selected_field_and_type(seeded, name):
    api, full_path = seeded
    answer = api.graphql(name, variables(name, full_path, api))
    selects = gql.paths(gql.parse(DOCUMENTS[name]).selections)
    assert check(answer.data, selects) == []
    positions = [n for n in objects_at(answer.data, ["project", "mergeRequests", "nodes",
                                                      "notes", "nodes"]) if n["position"]]
    assert positions or name != "merge_request_children"  # diff notes were checked too


def test_the_check_fails_on_a_missing_field_or_a_wrong_type(seeded):
    api, full_path = seeded
    data = api.graphql("issue_children", variables("issue_children", full_path, api)).data
    selects = gql.paths(gql.parse(DOCUMENTS["issue_children"]).selections)
    note = data["project"]["issues"]["nodes"][0]["notes"]["nodes"][0]
    note["system"] = "no"
    del note["body"]
    assert len(check(data, selects)) == 2
