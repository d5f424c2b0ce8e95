"""The normalized common model: the providers' documented payloads become records with only the
documented fields and no code, and the store never lets older data overwrite newer data."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.errors import InvalidInput
from shared.records import github, gitlab, store
from shared.records.model import FIELDS, KINDS, REPO_SCOPED, Context, record_id

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
OBSERVED = "2024-05-01T12:00:00.000000Z"
FORBIDDEN_KEYS = {"diff_hunk", "patch", "diff", "line_range", "position", "runners_token",
                  "email", "body_html", "diff_url", "patch_url"}


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def ctx(provider: str, repo: str | None = None, tenant: str = "acme") -> Context:
    repository = record_id(tenant, provider, "repositories", repo) if repo else None
    return Context(tenant, provider, "conn-1", repository, observed_at=OBSERVED)


def at(seconds: int) -> str:
    return isoformat(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds))


@pytest.fixture
def business(tmp_path: Path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})).business


# ---- every recorded payload --------------------------------------------------------------
def _github_records() -> list[dict | None]:
    c = ctx("github", "1296269")
    return [
        *(github.repository(r, ctx("github")) for r in load("github/repos")),
        *(github.pull_request(r, c) for r in load("github/pulls")),
        *(github.issue(r, c) for r in load("github/issues")),
        *(github.comment(r, c, "issue", 1347) for r in load("github/issue_comments")),
        *(github.comment(r, c, "pull_request", 1) for r in load("github/review_comments")),
        *github.reviews(load("github/reviews"), c, 12),
        *(github.label(r, c) for r in load("github/labels")),
        github.user(load("github/user"), ctx("github")),
    ]


def _gitlab_records() -> list[dict | None]:
    return [
        *(gitlab.repository(r, ctx("gitlab")) for r in load("gitlab/projects")),
        *(gitlab.pull_request(r, ctx("gitlab", "3")) for r in load("gitlab/merge_requests")),
        *(gitlab.issue(r, ctx("gitlab", "4")) for r in load("gitlab/issues")),
        *(gitlab.comment(r, ctx("gitlab", "5"), "pull_request", 2)
          for r in load("gitlab/merge_request_notes")),
        *(gitlab.comment(r, ctx("gitlab", "5"), "issue", 377) for r in load("gitlab/issue_notes")),
        *gitlab.reviews(load("gitlab/merge_request_approvals"), ctx("gitlab", "1"), 5),
        *(gitlab.label(r, ctx("gitlab", "3")) for r in load("gitlab/labels")),
        gitlab.user(load("gitlab/user"), ctx("gitlab")),
    ]


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for item in value.values() for k in _keys(item)}
    if isinstance(value, list):
        return {k for item in value for k in _keys(item)}
    return set()


@pytest.mark.parametrize("records", [_github_records, _gitlab_records], ids=["github", "gitlab"])
def test_every_recorded_payload_has_exactly_the_documented_fields(records) -> None:
    normalized = [r for r in records() if r is not None]
    assert {r["kind"] for r in normalized} == set(KINDS)
    for record in normalized:
        assert list(record) == list(FIELDS[record["kind"]]), record["kind"]
        assert "/" not in record["id"] and record["deleted"] is False
        assert not _keys(record) & FORBIDDEN_KEYS
        assert (_keys(record) - set(FIELDS[record["kind"]])) <= {"login", "external_id"}
        assert "@@ -16,33" not in json.dumps(record)  # the documented diff hunk


def _documented_fields() -> dict[str, set[str]]:
    sections: dict[str, set[str]] = {}
    current = ""
    for line in (ROOT / "docs" / "DATA_MODEL.md").read_text().splitlines():
        if line.startswith("#"):
            current = line.lstrip("#").strip()
        elif match := re.match(r"^\| `([a-z_]+)` \|", line):
            sections.setdefault(current, set()).add(match.group(1))
    return sections


def test_data_model_document_lists_the_same_fields_as_the_code() -> None:
    documented = _documented_fields()
    common = documented.pop("Fields every record has")
    assert set(documented) == set(KINDS)
    for kind in KINDS:
        assert common | documented[kind] == set(FIELDS[kind]), kind
        assert ("repository" in documented[kind]) == (kind in REPO_SCOPED), kind


# ---- spot checks, GitHub -----------------------------------------------------------------
def test_github_pull_request_keeps_metadata_and_converts_timestamps() -> None:
    pr = github.pull_request(load("github/pulls")[0], ctx("github", "1296269"))
    assert pr["id"] == "acme:github:pr:1296269%231347" and pr["external_id"] == "1"
    assert (pr["number"], pr["title"], pr["state"]) == (1347, "Amazing new feature", "merged")
    assert pr["created_at"] == "2011-01-26T19:01:12.000000Z"
    assert pr["author"] == {"login": "octocat", "external_id": "1"}
    assert pr["labels"] == ["bug"] and [a["login"] for a in pr["assignees"]] == ["octocat", "hubot"]
    assert (pr["source_branch"], pr["target_branch"]) == ("new-topic", "master")
    assert pr["url"] == "https://github.com/octocat/Hello-World/pull/1347"


def test_github_issue_list_items_that_are_pull_requests_become_none() -> None:
    pr_item, plain = load("github/issues")
    assert github.issue(pr_item, ctx("github", "1296269")) is None
    record = github.issue(plain, ctx("github", "186853002"))
    assert (record["number"], record["state"], record["kind"]) == (1, "open", "issues")


def test_github_review_comment_drops_the_diff_hunk_and_keeps_path_line_and_commit() -> None:
    raw = load("github/review_comments")[0]
    assert raw["diff_hunk"]
    record = github.comment(raw, ctx("github", "1296269"), "pull_request", 1)
    assert "diff_hunk" not in record and raw["diff_hunk"] not in json.dumps(record)
    assert (record["path"], record["line"], record["review_comment"]) == ("file1.txt", 2, True)
    assert record["commit_sha"] == "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert record["parent"] == "acme:github:pr:1296269%231"


def test_github_issue_comment_points_at_the_issue_record() -> None:
    c = ctx("github", "1296269")
    record = github.comment(load("github/issue_comments")[0], c, "issue", 1347)
    assert record["body"] == "Me too" and record["review_comment"] is False
    assert record["parent"] == record_id("acme", "github", "issues", "1296269#1347")


def test_github_review_label_user_and_repository() -> None:
    c = ctx("github", "1296269")
    (review,) = github.reviews(load("github/reviews"), c, 12)
    assert (review["state"], review["updated_at"]) == ("approved", "2019-11-17T17:43:43.000000Z")
    assert review["pull_request"] == record_id("acme", "github", "pull_requests", "1296269#12")
    assert github.label(load("github/labels")[0], c)["color"] == "#f29513"
    user = github.user(load("github/user"), ctx("github"))
    assert (user["login"], user["name"]) == ("octocat", "monalisa octocat")
    repo = github.repository(load("github/repos")[0], ctx("github"))
    assert (repo["full_name"], repo["private"], repo["owner"]["login"]) == (
        "octocat/Hello-World", False, "octocat")


def test_a_dismissed_review_outranks_its_approval_and_a_pending_one_ranks_last() -> None:
    raw, c = load("github/reviews")[0], ctx("github", "1296269")
    approved = github.review(raw, c, 12)
    dismissed = github.review({**raw, "state": "DISMISSED"}, c, 12)
    pending = github.review({**raw, "state": "PENDING", "submitted_at": None}, c, 12)
    assert pending["updated_at"] < approved["updated_at"] < dismissed["updated_at"]


def as_graphql(raw: dict) -> dict:
    """The same review as ``shared/fetch/github/graphql.py`` selects it."""
    user = raw["user"]
    return {"fullDatabaseId": str(raw["id"]), "state": raw["state"],
            "submittedAt": raw["submitted_at"], "url": raw["html_url"],
            "author": None if user is None else {"login": user["login"],
                                                 "databaseId": user["id"]}}


@pytest.mark.parametrize("change", [
    {}, {"state": "DISMISSED"}, {"state": "PENDING", "submitted_at": None},
    {"state": "CHANGES_REQUESTED"}, {"user": None}, {"id": 3_000_000_001},
])
def test_a_graphql_review_is_the_same_record_as_its_rest_review(change) -> None:
    raw, c = {**load("github/reviews")[0], **change}, ctx("github", "1296269")
    assert github.graphql_review(as_graphql(raw), c, 12) == github.review(raw, c, 12)


def test_a_graphql_review_author_without_a_database_id_is_no_author() -> None:
    node, c = as_graphql(load("github/reviews")[0]), ctx("github", "1296269")
    record = github.graphql_review({**node, "author": {"login": "some-org"}}, c, 12)
    assert record["author"] is None
    with pytest.raises(InvalidInput, match="fullDatabaseId"):
        github.graphql_review({**node, "fullDatabaseId": None}, c, 12)
    with pytest.raises(InvalidInput, match="state"):
        github.graphql_review({**node, "state": "RESOLVED"}, c, 12)


# ---- spot checks, GitLab -----------------------------------------------------------------
def test_gitlab_merge_request_maps_to_a_pull_request() -> None:
    mr = gitlab.pull_request(load("gitlab/merge_requests")[0], ctx("gitlab", "3"))
    assert (mr["number"], mr["state"], mr["draft"]) == (1, "merged", False)
    assert mr["merged_at"] == "2018-09-07T11:16:17.520000Z"
    assert mr["labels"] == ["Community contribution", "Manage"]
    assert mr["author"] == {"login": "admin", "external_id": "1"}


def test_gitlab_system_notes_become_none_and_diff_notes_keep_only_metadata() -> None:
    assert [gitlab.comment(n, ctx("gitlab", "5"), "issue", 377)
            for n in load("gitlab/issue_notes")] == [None, None]
    note, diff_note = (gitlab.comment(n, ctx("gitlab", "5"), "pull_request", 2)
                       for n in load("gitlab/merge_request_notes"))
    assert (note["body"], note["review_comment"]) == ("Comment for MR", False)
    assert (diff_note["path"], diff_note["line"], diff_note["review_comment"]) == (
        "package.json", 27, True)
    assert "line_code" not in json.dumps(diff_note)


def test_gitlab_approvals_become_one_approved_review_per_approver() -> None:
    approvals, c = load("gitlab/merge_request_approvals"), ctx("gitlab", "1")
    (review,) = gitlab.reviews(approvals, c, 5)
    assert (review["state"], review["author"]["login"]) == ("approved", "root")
    assert review["updated_at"] == "2016-06-08T21:20:42.470000Z"
    assert gitlab.review(approvals, c, 5) == [review]
    entry = {**approvals["approved_by"][0], "approved_at": "2016-06-08T21:20:40.000Z"}
    single = gitlab.review(entry, c, 5)
    assert (single["id"], single["submitted_at"]) == (review["id"], "2016-06-08T21:20:40.000000Z")


def test_gitlab_project_user_and_labels_drop_tokens_and_emails() -> None:
    project = gitlab.repository(load("gitlab/projects")[0], ctx("gitlab"))
    assert (project["name"], project["full_name"], project["private"]) == (
        "diaspora-client", "diaspora/diaspora-client", True)
    assert "b8547b1dc37721d05889db52fa2f02" not in json.dumps(project)
    user = gitlab.user(load("gitlab/user"), ctx("gitlab"))
    assert user["updated_at"] == OBSERVED and "john@example.com" not in json.dumps(user)
    labels = [gitlab.label(r, ctx("gitlab", "3")) for r in load("gitlab/labels")]
    assert [x["color"] for x in labels[:2]] == ["#d9534f", "#d9534f"]


# ---- refusals ----------------------------------------------------------------------------
def test_a_missing_required_field_is_refused_by_name() -> None:
    raw = dict(load("gitlab/merge_requests")[0])
    del raw["iid"]
    with pytest.raises(InvalidInput, match="iid"):
        gitlab.pull_request(raw, ctx("gitlab", "3"))
    no_clock = Context("acme", "github", "conn-1", record_id("acme", "github", "repositories", "1"))
    with pytest.raises(InvalidInput, match="updated_at"):
        github.label(load("github/labels")[0], no_clock)


def test_a_payload_of_another_repository_is_refused() -> None:
    with pytest.raises(InvalidInput, match="project_id"):
        gitlab.pull_request(load("gitlab/merge_requests")[0], ctx("gitlab", "999"))


def test_comment_bodies_are_capped_at_64_kib_on_a_character_boundary() -> None:
    raw = {**load("github/issue_comments")[0], "body": "é" * 40_000}
    record = github.comment(raw, ctx("github", "1296269"), "issue", 1347)
    assert record["body_truncated"] is True
    assert len(record["body"].encode()) == 64 * 1024 and set(record["body"]) == {"é"}


# ---- ids ---------------------------------------------------------------------------------
def test_record_ids_of_two_tenants_or_providers_never_collide_and_have_no_slash() -> None:
    pairs = [("a:b", "github", "c"), ("a", "b:github", "c"), ("a", "github", "b:c"),
             ("acme", "gitlab", "group/sub/project"), ("__x", "github", "y__"),
             ("acme", "github", "1"), ("acme", "gitlab", "1"), ("other", "github", "1")]
    ids = [record_id(t, p, kind, e) for t, p, e in pairs for kind in KINDS]
    assert len(set(ids)) == len(ids)
    assert all("/" not in i and not (i.startswith("__") and i.endswith("__")) for i in ids)


def test_every_record_id_is_accepted_by_the_store(business) -> None:
    rid = record_id("__t", "gitlab", "repositories", "group/sub:project%2F")
    business.put("repositories", rid, {"ok": True})
    assert business.get("repositories", rid) == {"ok": True}


# ---- the store ---------------------------------------------------------------------------
def _record(version: int, title: str = "t", rid: str = "acme:github:pr:1%231") -> dict:
    return {"id": rid, "kind": "pull_requests", "updated_at": at(version), "title": title,
            "deleted": False}


def test_upsert_is_idempotent_and_the_second_write_rewrites_nothing(business) -> None:
    assert store.upsert(business, _record(1)) is True
    business.put("pull_requests", _record(1)["id"], {**_record(1), "marker": "untouched"})
    assert store.upsert(business, _record(1)) is False
    assert business.get("pull_requests", _record(1)["id"])["marker"] == "untouched"


def test_an_older_update_never_overwrites_a_newer_one(business) -> None:
    assert store.upsert(business, _record(10, "new")) is True
    assert store.upsert(business, _record(5, "old")) is False
    assert business.get("pull_requests", _record(0)["id"])["title"] == "new"


def test_equal_updated_at_twice_writes_once(business) -> None:
    assert store.upsert_many(business, [_record(3, "first"), _record(3, "second"), None]) == 1
    assert business.get("pull_requests", _record(0)["id"])["title"] == "first"


def test_a_tombstone_blocks_older_upserts_and_a_newer_upsert_restores(business) -> None:
    rid = _record(0)["id"]
    store.upsert(business, _record(1, "alive"))
    assert store.mark_deleted(business, "pull_requests", rid, at(5)) is True
    assert store.upsert(business, _record(4, "stale")) is False
    assert store.upsert(business, _record(5, "same instant")) is False
    assert business.get("pull_requests", rid)["deleted"] is True
    assert store.upsert(business, _record(6, "recreated")) is True
    restored = business.get("pull_requests", rid)
    assert (restored["deleted"], restored["title"], "deleted_at" in restored) == (
        False, "recreated", False)


def test_a_deletion_seen_before_the_creation_still_wins(business) -> None:
    rid = _record(0)["id"]
    assert store.mark_deleted(business, "pull_requests", rid, at(5)) is True
    assert business.get("pull_requests", rid)["tenant"] == "acme"
    assert store.upsert(business, _record(2)) is False
    assert store.mark_deleted(business, "pull_requests", rid, at(5)) is False


def test_a_deletion_older_than_the_stored_data_is_ignored(business) -> None:
    store.upsert(business, _record(9))
    assert store.mark_deleted(business, "pull_requests", _record(0)["id"], at(3)) is False
    assert business.get("pull_requests", _record(0)["id"])["deleted"] is False


def test_upsert_refuses_records_that_cannot_be_ordered(business) -> None:
    with pytest.raises(InvalidInput, match="updated_at"):
        store.upsert(business, {**_record(1), "updated_at": "2024-01-01T00:00:00Z"})
    with pytest.raises(InvalidInput, match="mark_deleted"):
        store.upsert(business, {**_record(1), "deleted": True})
    with pytest.raises(InvalidInput, match="kind"):
        store.upsert(business, {**_record(1), "kind": "secrets"})


def test_racing_old_and_new_versions_end_with_the_newest(business) -> None:
    def writer(offset: int) -> None:
        for i in range(50):
            store.upsert(business, _record(100 if (i + offset) % 2 else 1, f"v{i}"))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert business.get("pull_requests", _record(0)["id"])["updated_at"] == at(100)


def test_a_fetched_and_a_webhook_copy_of_one_pull_request_are_one_record(business) -> None:
    raw, c = load("github/pulls")[0], ctx("github", "1296269")
    older = {**raw, "updated_at": "2011-01-25T00:00:00Z", "title": "Earlier title"}
    assert store.upsert_many(business, [github.pull_request(raw, c),
                                        github.pull_request(older, c)]) == 1
    (only,) = business.query("pull_requests")
    assert only.data["title"] == "Amazing new feature"
