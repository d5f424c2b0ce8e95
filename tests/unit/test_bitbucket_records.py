"""Bitbucket Cloud payloads become the common records: only documented fields, Bitbucket's uuids
and per-repository numbers mapped onto the model's ids, approvals from participants, and the
webhook entities landing on the same records the fetcher writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.errors import InvalidInput
from shared.records import bitbucket as bb
from shared.records.model import FIELDS, KINDS, Context, record_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bitbucket"
OBSERVED = "2024-05-01T12:00:00.000000Z"
REPO = "{673a6070-3421-46c9-9d48-90745f7bfe8e}"
ERIK, MONA = "{a288a0ab-e13b-43f0-a689-c4ef0a249875}", "{d301aafa-d676-4ee0-88be-962be7417567}"
# Bitbucket keys that must never reach a record: descriptions, rendered HTML, diff links, e-mail
FORBIDDEN = {"description", "rendered", "summary", "html", "diff", "diffstat", "content",
             "email", "clone", "account_id"}


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def hook(name: str) -> dict:
    return load(f"webhooks/{name}")


def ctx(repo: str | None = REPO) -> Context:
    repository = record_id("acme", "bitbucket", "repositories", repo) if repo else None
    return Context("acme", "bitbucket", "conn-1", repository, observed_at=OBSERVED)


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for item in value.values() for k in _keys(item)}
    if isinstance(value, list):
        return {k for item in value for k in _keys(item)}
    return set()


def every_record() -> list[dict]:
    c = ctx()
    found = [
        *(bb.repository(r, ctx(None)) for r in load("repositories")["values"]),
        *(bb.pull_request(r, c) for r in load("pullrequests")["values"]),
        *bb.reviews(load("pullrequest"), c, 1),
        *(bb.comment(r, c, "pull_request", 1) for r in load("pullrequest_comments")["values"]),
        *(bb.issue(r, c) for r in load("issues")["values"]),
        *(bb.comment(r, c, "issue", 1) for r in load("issue_comments")["values"]),
        bb.user(load("user"), ctx(None)),
    ]
    return [r for r in found if r is not None]


def test_every_documented_payload_has_exactly_the_common_fields_and_nothing_bitbucket_only():
    records = every_record()
    assert {r["kind"] for r in records} == set(KINDS) - {"labels"}  # Bitbucket has no labels
    for record in records:
        assert list(record) == list(FIELDS[record["kind"]]), record["kind"]
        assert "/" not in record["id"] and record["provider"] == "bitbucket"
        assert not _keys(record) & FORBIDDEN, record["kind"]
        assert (_keys(record) - set(FIELDS[record["kind"]])) <= {"login", "external_id"}


def test_a_repository_is_keyed_by_its_uuid_and_owned_by_its_workspace():
    first, second = (bb.repository(r, ctx(None)) for r in load("repositories")["values"])
    assert first["id"] == record_id("acme", "bitbucket", "repositories", REPO)
    assert (first["name"], first["full_name"], first["default_branch"]) == (
        "repo_name", "team_name/repo_name", "master")
    assert first["owner"] == {"login": "team_name",
                              "external_id": "{ab5bb6c1-aa14-49b1-ab9c-b2d1e8f76d06}"}
    assert (first["has_issues"], second["has_issues"]) == (True, False)
    assert first["updated_at"] == "2015-03-06T15:23:38.179678Z"


def test_pull_requests_map_states_branches_and_numbered_keys():
    draft, merged = (bb.pull_request(r, ctx()) for r in load("pullrequests")["values"])
    assert merged["id"] == record_id("acme", "bitbucket", "pull_requests", f"{REPO}#1")
    assert merged["external_id"] == f"{REPO}#1" and merged["number"] == 1
    assert (merged["state"], merged["merge_commit_sha"], merged["head_sha"]) == (
        "merged", "764413d85e29", "d3022fc0ca3d")
    assert (merged["source_branch"], merged["target_branch"]) == ("branch2", "master")
    assert merged["author"] == {"login": "evzijst", "external_id": ERIK}
    assert (merged["closed_at"], merged["merged_at"], merged["labels"]) == (None, None, [])
    assert (draft["state"], draft["draft"]) == ("open", True)
    declined = bb.pull_request(hook("pullrequest.rejected")["pullrequest"], ctx())
    assert declined["state"] == "closed"


def test_only_participants_with_a_decision_are_reviews():
    [approval] = bb.reviews(load("pullrequest"), ctx(), 1)  # Erik only commented
    assert approval["external_id"] == f"{REPO}#1:{MONA}"
    assert (approval["state"], approval["submitted_at"]) == (
        "approved", "2015-04-06T16:34:59.195330Z")
    assert approval["updated_at"] == approval["submitted_at"]
    assert approval["pull_request"] == record_id("acme", "bitbucket", "pull_requests",
                                                 f"{REPO}#1")
    with pytest.raises(InvalidInput, match="another pull request"):
        bb.reviews(load("pullrequest"), ctx(), 2)


def test_inline_comments_keep_path_and_line_and_deleted_ones_are_skipped():
    inline, general, deleted = (bb.comment(r, ctx(), "pull_request", 1)
                                for r in load("pullrequest_comments")["values"])
    assert (inline["review_comment"], inline["path"], inline["line"]) == (
        True, "path/to/file", 10)
    assert inline["body"] == "Comment text" and inline["commit_sha"] is None
    assert (general["review_comment"], general["path"], general["id"]) == (
        False, None, record_id("acme", "bitbucket", "comments", "16"))
    assert deleted is None


def test_issue_comments_are_keyed_apart_from_pull_request_comments():
    [comment] = (bb.comment(r, ctx(), "issue", 1) for r in load("issue_comments")["values"])
    assert comment["id"] == record_id("acme", "bitbucket", "comments", "issue:5")
    assert comment["parent"] == record_id("acme", "bitbucket", "issues", f"{REPO}#1")
    with pytest.raises(InvalidInput, match="inline"):
        bb.comment(load("pullrequest_comments")["values"][0], ctx(), "issue", 1)


def test_issue_states_reporter_and_assignee():
    on_hold, resolved = (bb.issue(r, ctx()) for r in load("issues")["values"])
    assert (on_hold["state"], resolved["state"]) == ("open", "closed")
    assert resolved["author"]["external_id"] == ERIK
    assert resolved["assignees"] == [{"login": "mona", "external_id": MONA}]


def test_a_webhook_and_a_fetched_pull_request_are_one_record():
    fetched = bb.pull_request(load("pullrequests")["values"][1], ctx())
    hooked = bb.pull_request(hook("pullrequest.fulfilled")["pullrequest"], ctx())
    assert hooked["id"] == fetched["id"] and hooked["state"] == fetched["state"] == "merged"
    approved = hook("pullrequest.approved")["approval"]
    review = bb.review(approved["user"], ctx(), 1, "approved", approved["date"])
    assert review == bb.reviews(load("pullrequest"), ctx(), 1)[0]


def test_a_payload_of_another_repository_or_without_required_fields_is_refused():
    raw = load("pullrequests")["values"][0]
    with pytest.raises(InvalidInput, match="another repository"):
        bb.pull_request(raw, ctx("{00000000-0000-0000-0000-000000000000}"))
    with pytest.raises(InvalidInput, match="title"):
        bb.pull_request({**raw, "title": None}, ctx())
    with pytest.raises(InvalidInput, match="state"):
        bb.issue({**load("issues")["values"][0], "state": "sleeping"}, ctx())
    with pytest.raises(InvalidInput, match="uuid"):
        bb.repository({**load("repositories")["values"][0], "uuid": None}, ctx(None))


def test_a_deleted_account_has_no_identity_and_a_nickname_falls_back_to_the_display_name():
    assert bb.person({"display_name": "Former user", "type": "user"}) is None
    assert bb.person({"uuid": "{u}", "display_name": "Jane"}) == {"login": "Jane",
                                                                  "external_id": "{u}"}
