"""ingest turns the providers' documented webhook payloads into the fetchers' records: every
recorded payload lands on the expected record, deletions become tombstones, a redelivered or
an older event changes nothing, and events nobody connected are dropped with a stable key."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from shared import messages, policy
from shared.bootstrap import build
from shared.config import Config
from shared.errors import PermanentError
from shared.ingest.gitlab_shapes import iso
from shared.ingest.handler import on_webhook_event
from shared.records import github as gh_records
from shared.records import gitlab as gl_records
from shared.records.model import Context, record_id
from shared.topology import subscription_specs

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
RECEIVED = "2030-01-01T00:00:00.000000Z"
LATER = "2030-01-01T00:05:00.000000Z"
GH_REPO, GL_MR_PROJECT, GL_NOTE_PROJECT = "186853002", "14", "5"


def payload(provider: str, name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / provider / "webhooks" / f"{name}.json").read_text())


def inbound(provider: str, event: str, body: dict, *, connection: str | None = None,
            received_at: str = RECEIVED, delivery: str = "d-1", **extra: Any):
    message = {"provider": provider, "event": event, "delivery": delivery,
               "connection": connection, "received_at": received_at, "headers": {},
               "payload": body, **extra}
    return messages.Inbound(f"events-{provider}", "webhook.event", 1, f"webhook-{provider}",
                            message, "m-1")


def send(ports, provider: str, fixture: str, **kwargs: Any) -> dict:
    body = payload(provider, fixture)
    event = fixture.split(".")[0] if provider == "github" else "Hook"
    on_webhook_event(ports, inbound(provider, event, body, **kwargs))
    return body


@pytest.fixture
def ports(tmp_path: Path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))


def connect(ports, connection: str, provider: str, tenant: str = "acme", **fields: Any) -> None:
    ports.business.put("connections", connection, {
        "tenant": tenant, "provider": provider, "kind": "app", "status": "active", **fields})


def add_repo(ports, connection: str, provider: str, raw: dict, tenant: str = "acme") -> str:
    ctx = Context(tenant, provider, connection, observed_at="2019-01-01T00:00:00.000000Z")
    normalize = gh_records.repository if provider == "github" else gl_records.repository
    record = normalize(raw, ctx)
    ports.business.put("repositories", record["id"], record)
    return record["id"]


GL_PROJECT = {"path": "gitlab-test", "path_with_namespace": "gitlabhq/gitlab-test",
              "namespace": {"id": 9, "full_path": "gitlabhq"}, "visibility": "public",
              "last_activity_at": "2019-01-01T00:00:00Z"}


@pytest.fixture
def github(ports):
    connect(ports, "conn-gh", "github")
    add_repo(ports, "conn-gh", "github", payload("github", "issues.opened")["repository"])
    return ports


@pytest.fixture
def gitlab(ports):
    connect(ports, "conn-gl", "gitlab")
    for project in (14, 5):
        add_repo(ports, "conn-gl", "gitlab", {**GL_PROJECT, "id": project})
    return ports


def rid(kind: str, key: str, provider: str = "github", tenant: str = "acme") -> str:
    return record_id(tenant, provider, kind, key)


def only(ports, kind: str) -> dict:
    (snap,) = ports.business.query(kind)
    return snap.data


def snapshot(ports) -> dict:
    return {kind: sorted((s.id, json.dumps(s.data, sort_keys=True))
                         for s in ports.business.query(kind))
            for kind in ("pull_requests", "issues", "comments", "reviews", "labels",
                         "repositories")}


# ---- GitHub: every recorded payload ---------------------------------------------------------
def test_a_github_pull_request_event_becomes_the_fetchers_pull_request_record(github):
    send(github, "github", "pull_request.opened")
    pr = only(github, "pull_requests")
    assert pr["id"] == rid("pull_requests", f"{GH_REPO}#2")
    assert (pr["title"], pr["state"], pr["draft"], pr["labels"]) == (
        "Update the README with new information.", "open", False, ["bug"])
    assert pr["author"] == {"login": "Codertocat", "external_id": "21031067"}
    assert (pr["source_branch"], pr["target_branch"]) == ("changes", "master")
    assert pr["head_sha"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert pr["updated_at"] == "2019-05-15T15:20:33.000000Z"
    assert pr["repository"] == rid("repositories", GH_REPO) and pr["connection"] == "conn-gh"


def test_a_github_issue_event_is_upserted_and_its_deletion_is_a_tombstone(github):
    send(github, "github", "issues.opened")
    issue = only(github, "issues")
    assert issue["id"] == rid("issues", f"{GH_REPO}#1")
    assert (issue["title"], issue["state"], issue["labels"]) == (
        "Spelling error in the README file", "open", ["bug"])
    assert issue["assignees"] == [{"login": "Codertocat", "external_id": "21031067"}]
    send(github, "github", "issues.deleted", received_at=LATER)
    gone = only(github, "issues")
    assert gone["deleted"] is True and gone["deleted_at"] == LATER


def test_github_issue_comments_are_kept_and_deleted(github):
    send(github, "github", "issue_comment.created")
    comment = only(github, "comments")
    assert comment["id"] == rid("comments", "492700400")
    assert comment["parent"] == rid("issues", f"{GH_REPO}#1")
    assert (comment["parent_kind"], comment["review_comment"]) == ("issue", False)
    assert comment["body"] == "You are totally right! I'll get this fixed right away."
    send(github, "github", "issue_comment.deleted", received_at=LATER)
    assert only(github, "comments")["deleted"] is True


def test_a_comment_on_a_pull_request_belongs_to_the_pull_request(github):
    body = payload("github", "issue_comment.created")
    body["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    on_webhook_event(github, inbound("github", "issue_comment", body))
    comment = only(github, "comments")
    assert comment["parent"] == rid("pull_requests", f"{GH_REPO}#1")


def test_github_label_events_create_and_tombstone_labels(github):
    send(github, "github", "label.created")
    label = only(github, "labels")
    assert label["id"] == rid("labels", "1362937026")
    assert (label["name"], label["color"], label["updated_at"]) == (
        ":bug: Bugfix", "#cceeaa", RECEIVED)
    send(github, "github", "label.deleted", received_at=LATER)
    assert only(github, "labels")["deleted_at"] == LATER


def test_a_github_review_arrives_lower_case_and_is_stored_like_a_fetched_one(github):
    send(github, "github", "pull_request_review.submitted")
    review = only(github, "reviews")
    assert review["id"] == rid("reviews", "237895671")
    assert (review["state"], review["submitted_at"]) == ("commented",
                                                         "2019-05-15T15:20:38.000000Z")
    assert review["pull_request"] == rid("pull_requests", f"{GH_REPO}#2")


def test_a_github_review_comment_keeps_its_position_but_never_the_diff(github):
    send(github, "github", "pull_request_review_comment.created")
    comment = only(github, "comments")
    assert comment["id"] == rid("comments", "review:284312630")
    assert (comment["path"], comment["line"], comment["review_comment"]) == ("README.md", 265,
                                                                             True)
    assert "diff_hunk" not in json.dumps(comment)
    send(github, "github", "pull_request_review_comment.deleted", received_at=LATER)
    assert only(github, "comments")["deleted"] is True


def _pending_syncs(ports, provider: str = "github") -> list[dict]:
    got = ports.bus.peek(policy.subscription_name(f"sync-requests-{provider}"), 20)
    return [json.loads(m.data) for m in got]


def subscribe(ports) -> None:
    for spec in subscription_specs():
        ports.bus.ensure_subscription(spec)


@pytest.fixture
def installed(ports):
    subscribe(ports)
    connect(ports, "conn-app", "github", installation_id=2)
    add_repo(ports, "conn-app", "github", {"id": 1296269, "name": "Hello-World",
                                           "full_name": "octocat/Hello-World"})
    return ports


def test_a_new_installation_asks_for_a_sync_and_a_deleted_one_tombstones_its_repos(installed):
    send(installed, "github", "installation.created")
    assert installed.business.get("connections", "conn-app")["installation_state"] == "active"
    (sync,) = _pending_syncs(installed)
    assert (sync["connection"], sync["requested_at"]) == ("conn-app", RECEIVED)
    send(installed, "github", "installation.deleted", received_at=LATER)
    assert installed.business.get("connections", "conn-app")["installation_state"] == "deleted"
    repo = installed.business.get("repositories", rid("repositories", "1296269"))
    assert repo["deleted"] is True and repo["deleted_at"] == LATER


def test_an_old_installation_event_does_not_undo_a_newer_state(installed):
    send(installed, "github", "installation.deleted", received_at=LATER)
    send(installed, "github", "installation.created", received_at=RECEIVED)
    assert installed.business.get("connections", "conn-app")["installation_state"] == "deleted"


def test_repositories_removed_from_an_installation_are_tombstoned_and_readded_ones_synced(
        installed):
    connect(installed, "conn-app", "github", installation_id="957387")
    space = add_repo(installed, "conn-app", "github",
                     {"id": 186853007, "name": "Space", "full_name": "Codertocat/Space"})
    send(installed, "github", "installation_repositories.removed")
    assert installed.business.get("repositories", space)["deleted"] is True
    send(installed, "github", "installation_repositories.added", received_at=LATER)
    assert installed.business.get("repositories", space) is None  # the sync rewrites it
    assert [s["reason"] for s in _pending_syncs(installed)] == [
        "webhook:installation_repositories"]


# ---- GitLab: every recorded payload ---------------------------------------------------------
def test_a_gitlab_merge_request_event_becomes_a_pull_request_and_its_labels(gitlab):
    send(gitlab, "gitlab", "merge_request.open")
    pr = only(gitlab, "pull_requests")
    assert pr["id"] == rid("pull_requests", f"{GL_MR_PROJECT}#1", "gitlab")
    assert (pr["title"], pr["state"], pr["draft"], pr["labels"]) == ("MS-Viewport", "open",
                                                                     False, ["API"])
    assert pr["assignees"] == [{"login": "user1", "external_id": "6"}]
    assert pr["head_sha"] == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert pr["author"] is None  # the event names only author_id 51; its user is someone else
    labels = {s.data["name"]: s.data for s in gitlab.business.query("labels")}
    assert {name: label["color"] for name, label in labels.items()} == {
        "API": "#ffffff", "Platform": "#123123"}


def test_a_gitlab_issue_event_pairs_assignees_with_their_ids(gitlab):
    send(gitlab, "gitlab", "issue.open")
    issue = only(gitlab, "issues")
    assert issue["id"] == rid("issues", f"{GL_MR_PROJECT}#23", "gitlab")
    assert (issue["title"], issue["state"]) == ("New API: create/update/delete file", "open")
    assert issue["assignees"] == [{"login": "user1", "external_id": "51"}]


@pytest.mark.parametrize(("fixture", "note", "parent", "created"), [
    ("note.merge_request", "1244", ("pull_requests", f"{GL_NOTE_PROJECT}#1"), "18:21:36"),
    ("note.issue", "1241", ("issues", f"{GL_NOTE_PROJECT}#17"), "17:06:40"),
])
def test_gitlab_notes_on_merge_requests_and_issues_become_comments(gitlab, fixture, note,
                                                                   parent, created):
    send(gitlab, "gitlab", fixture)
    comment = only(gitlab, "comments")
    assert comment["id"] == rid("comments", note, "gitlab")
    assert comment["parent"] == rid(*parent, "gitlab")
    assert comment["author"] == {"login": "root", "external_id": "1"}
    assert comment["created_at"] == f"2015-05-17T{created}.000000Z"


def test_gitlab_hook_timestamps_are_read_as_utc():
    assert iso("2015-05-17 18:21:36 UTC") == "2015-05-17T18:21:36+00:00"
    assert iso("2021-04-28 21:50:00 +0200") == "2021-04-28T21:50:00+02:00"
    assert iso("2013-12-03T17:23:34Z") == "2013-12-03T17:23:34Z"


def test_a_gitlab_comment_on_a_commit_is_acknowledged_and_ignored(gitlab, caplog):
    with caplog.at_level(logging.INFO):
        send(gitlab, "gitlab", "note.commit")
    assert gitlab.business.query("comments") == []
    assert "ingest.gitlab.ignored_event" in caplog.messages


def test_a_gitlab_update_by_someone_else_keeps_the_known_author(gitlab):
    key = rid("pull_requests", f"{GL_MR_PROJECT}#1", "gitlab")
    send(gitlab, "gitlab", "merge_request.open")
    gitlab.business.put("pull_requests", key, {
        **gitlab.business.get("pull_requests", key),
        "author": {"login": "jsmith", "external_id": "51"},
        "updated_at": "2013-12-03T17:23:34.000000Z"})
    body = payload("gitlab", "merge_request.open")
    body["object_attributes"].update(action="merge", state="merged",
                                     updated_at="2013-12-04 10:00:00 UTC")
    on_webhook_event(gitlab, inbound("gitlab", "Merge Request Hook", body, delivery="d-2"))
    pr = gitlab.business.get("pull_requests", key)
    assert pr["author"] == {"login": "jsmith", "external_id": "51"}
    assert (pr["state"], pr["merged_at"]) == ("merged", "2013-12-04T10:00:00.000000Z")


# ---- ordering, redelivery, unknown events and accounts --------------------------------------
@pytest.mark.parametrize(("provider", "fixture"), [
    ("github", "pull_request.opened"), ("github", "issue_comment.created"),
    ("github", "label.created"), ("github", "pull_request_review.submitted"),
    ("gitlab", "merge_request.open"), ("gitlab", "note.issue"),
])
def test_a_redelivered_event_leaves_the_records_unchanged(ports, provider, fixture):
    connect(ports, "conn", provider)
    if provider == "github":
        add_repo(ports, "conn", "github", payload("github", "issues.opened")["repository"])
    else:
        for project in (14, 5):
            add_repo(ports, "conn", "gitlab", {**GL_PROJECT, "id": project})
    send(ports, provider, fixture)
    first = snapshot(ports)
    for _ in range(2):
        send(ports, provider, fixture)
    assert snapshot(ports) == first


def test_an_older_event_arriving_late_does_not_overwrite_newer_data(github):
    newer = payload("github", "pull_request.opened")
    newer["pull_request"].update(title="Renamed later", updated_at="2019-05-16T09:00:00Z")
    on_webhook_event(github, inbound("github", "pull_request", newer, delivery="d-new"))
    send(github, "github", "pull_request.opened", delivery="d-old")
    assert only(github, "pull_requests")["title"] == "Renamed later"


def test_an_older_label_event_does_not_undo_a_newer_deletion(github):
    send(github, "github", "label.deleted", received_at=LATER)
    send(github, "github", "label.created", received_at=RECEIVED)
    assert only(github, "labels")["deleted"] is True


def test_an_unknown_event_type_is_acknowledged_and_ignored(github, caplog):
    before = snapshot(github)
    with caplog.at_level(logging.INFO):
        on_webhook_event(github, inbound("github", "ping", {"zen": "Design for failure."}))
        on_webhook_event(github, inbound("gitlab", "Push Hook", {"object_kind": "push"}))
    assert snapshot(github) == before
    assert caplog.messages.count("ingest.github.ignored_event") == 1
    assert caplog.messages.count("ingest.gitlab.ignored_event") == 1


def test_an_event_for_an_unknown_repository_or_installation_is_dropped(ports, caplog):
    with caplog.at_level(logging.INFO):
        send(ports, "github", "pull_request.opened")
        send(ports, "github", "installation.created")
        send(ports, "gitlab", "merge_request.open")
    assert all(not rows for rows in snapshot(ports).values())
    assert caplog.messages.count("ingest.github.unknown_account") == 2
    assert caplog.messages.count("ingest.gitlab.unknown_account") == 1


def test_an_app_level_event_reaches_every_tenant_with_that_repository_but_not_self_hosted(
        ports):
    repo = payload("github", "issues.opened")["repository"]
    for tenant, connection, extra in (("acme", "c-1", {}), ("globex", "c-2", {}),
                                      ("initech", "c-3", {"base_url": "https://ghe.example"})):
        connect(ports, connection, "github", tenant, **extra)
        add_repo(ports, connection, "github", repo, tenant)
    send(ports, "github", "pull_request.opened")
    assert sorted(s.data["tenant"] for s in ports.business.query("pull_requests")) == [
        "acme", "globex"]


def test_a_per_connection_event_reaches_only_that_connection(ports):
    repo = payload("github", "issues.opened")["repository"]
    for tenant, connection in (("acme", "c-1"), ("globex", "c-2")):
        connect(ports, connection, "github", tenant)
        add_repo(ports, connection, "github", repo, tenant)
    send(ports, "github", "pull_request.opened", connection="c-2")
    assert [s.data["connection"] for s in ports.business.query("pull_requests")] == ["c-2"]


def test_an_event_too_large_to_carry_asks_for_a_sync_instead(github):
    subscribe(github)
    on_webhook_event(github, inbound("github", "pull_request", None, payload_omitted=True,
                                     subject={"repository": int(GH_REPO)}))
    assert github.business.query("pull_requests") == []
    assert [s["connection"] for s in _pending_syncs(github)] == ["conn-gh"]


def test_a_malformed_payload_is_a_permanent_error(github):
    body = copy.deepcopy(payload("github", "pull_request.opened"))
    body["pull_request"] = "not an object"
    with pytest.raises(PermanentError):
        on_webhook_event(github, inbound("github", "pull_request", body))
    assert github.business.query("pull_requests") == []
