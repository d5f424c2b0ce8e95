"""Delete events from webhooks: each becomes a tombstone with its reason (``deleted``,
``transferred``, ``access_lost``), a repository takes its records along, a rename keeps every
record's identity, and a late or repeated event never resurrects or re-deletes wrongly."""

from __future__ import annotations

from typing import Any

from shared.fetch import reconcile_state
from shared.ingest.handler import on_webhook_event
from shared.records import store
from tests.unit.test_webhooks_ingest import (
    GH_REPO,
    LATER,
    RECEIVED,
    _pending_syncs,
    add_repo,
    connect,
    inbound,
    payload,
    rid,
    send,
    subscribe,
)

EARLIER = "2029-12-31T23:00:00.000000Z"
REPO_ID = rid("repositories", GH_REPO)


def github_repo(ports) -> Any:
    subscribe(ports)
    connect(ports, "conn-gh", "github")
    add_repo(ports, "conn-gh", "github", payload("github", "issues.opened")["repository"])
    send(ports, "github", "issues.opened")  # an issue under it
    send(ports, "github", "issue_comment.created")  # a comment under it
    return ports


def reasons(ports) -> dict[str, str | None]:
    return {s.id: s.data.get("deleted_reason") for kind in ("repositories", "issues",
                                                            "comments")
            for s in ports.business.query(kind)}


def test_an_issue_transferred_away_is_a_transferred_tombstone(ports):
    github_repo(ports)
    body = {**payload("github", "issues.deleted"), "action": "transferred"}
    on_webhook_event(ports, inbound("github", "issues", body, received_at=LATER))
    issue = ports.business.get("issues", rid("issues", f"{GH_REPO}#1"))
    assert (issue["deleted"], issue["deleted_reason"]) == (True, "transferred")


def test_a_deleted_issue_takes_its_comments_along(ports):
    github_repo(ports)
    send(ports, "github", "issues.deleted", received_at=LATER)
    comments = ports.business.query("comments")
    assert comments and all(c.data["deleted_reason"] == "deleted" for c in comments)


def test_a_deleted_repository_tombstones_it_and_every_record_under_it(ports):
    github_repo(ports)
    send(ports, "github", "repository.deleted", received_at=LATER)
    found = reasons(ports)
    assert len(found) == 3 and set(found.values()) == {"deleted"}
    assert [s["reason"] for s in _pending_syncs(ports)] == ["webhook:repository"]


def test_a_transferred_repository_is_transferred_and_its_sweep_made_due(ports):
    github_repo(ports)
    send(ports, "github", "repository.transferred", received_at=LATER)
    assert set(reasons(ports).values()) == {"transferred"}
    state = ports.business.get(reconcile_state.COLLECTION, REPO_ID)
    assert state["due_at"] == LATER  # restored by the follow-up sync if still within reach


def test_a_renamed_repository_keeps_its_records_and_takes_the_new_name(ports):
    github_repo(ports)
    before = {s.id for s in ports.business.query("issues")}
    send(ports, "github", "repository.renamed", received_at=LATER)
    repo = ports.business.get("repositories", REPO_ID)
    assert (repo["name"], repo["full_name"], repo["deleted"]) == (
        "Hello-World-2", "Codertocat/Hello-World-2", False)
    assert {s.id for s in ports.business.query("issues")} == before
    assert not any(reasons(ports).values())
    # an older rename arriving late does not undo the newer one
    older = {**payload("github", "repository.renamed")}
    older["repository"] = {**older["repository"], "name": "Stale", "full_name": "C/Stale"}
    on_webhook_event(ports, inbound("github", "repository", older, received_at=EARLIER))
    assert ports.business.get("repositories", REPO_ID)["name"] == "Hello-World-2"


def test_an_older_rename_recovered_late_from_the_log_does_not_undo_a_newer_one(ports):
    """A delivery read from GitHub's log an hour late (``verified_by: provider_api``) is not
    versioned by that late arrival: the newer rename stays, and a sync is asked for."""
    github_repo(ports)
    newer = payload("github", "repository.renamed")
    newer["repository"] = {**newer["repository"], "updated_at": "2029-12-31T23:30:00Z"}
    on_webhook_event(ports, inbound("github", "repository", newer, received_at=EARLIER))
    older = payload("github", "repository.renamed")  # its updated_at: 2019
    older["repository"] = {**older["repository"], "name": "Stale", "full_name": "C/Stale"}
    before = len(_pending_syncs(ports))
    on_webhook_event(ports, inbound("github", "repository", older, received_at=LATER,
                                    delivery="d-late", verified_by="provider_api"))
    assert ports.business.get("repositories", REPO_ID)["name"] == "Hello-World-2"
    assert len(_pending_syncs(ports)) == before + 1


def test_an_unknown_repository_action_changes_nothing(ports):
    github_repo(ports)
    before = reasons(ports)
    body = {**payload("github", "repository.deleted"), "action": "starred"}
    on_webhook_event(ports, inbound("github", "repository", body, received_at=LATER))
    assert reasons(ports) == before and not any(before.values())


def test_repositories_removed_from_an_installation_lose_access_with_their_records(ports):
    subscribe(ports)
    connect(ports, "conn-app", "github", installation_id="957387")
    space = add_repo(ports, "conn-app", "github",
                     {"id": 186853007, "name": "Space", "full_name": "Codertocat/Space"})
    issue = {"id": rid("issues", "186853007#1"), "kind": "issues", "tenant": "acme",
             "provider": "github", "connection": "conn-app", "repository": space,
             "external_id": "1", "updated_at": RECEIVED, "deleted": False}
    store.upsert(ports.business, issue)
    send(ports, "github", "installation_repositories.removed", received_at=LATER)
    for kind, record_id in (("repositories", space), ("issues", issue["id"])):
        stored = ports.business.get(kind, record_id)
        assert (stored["deleted"], stored["deleted_reason"]) == (True, "access_lost")
    # added back later: the repository's sweep is due at once (it restores what still exists)
    send(ports, "github", "installation_repositories.added",
         received_at="2030-01-01T00:10:00.000000Z")
    assert ports.business.get(reconcile_state.COLLECTION, space)["due_at"] == \
        "2030-01-01T00:10:00.000000Z"


def test_a_late_deletion_does_not_remove_a_record_edited_after_it(ports):
    github_repo(ports)
    comment = ports.business.query("comments")[0]
    edited = {k: v for k, v in comment.data.items() if k not in ("deleted_at",)}
    store.upsert(ports.business, {**edited, "updated_at": "2030-01-01T00:02:00.000000Z"})
    body = payload("github", "issue_comment.deleted")
    on_webhook_event(ports, inbound("github", "issue_comment", body, received_at=EARLIER))
    assert ports.business.get("comments", comment.id)["deleted"] is False
    send(ports, "github", "issue_comment.deleted", received_at=LATER)
    send(ports, "github", "issue_comment.deleted", received_at=LATER, delivery="d-again")
    assert ports.business.get("comments", comment.id)["deleted_at"] == LATER


def test_a_deletion_heard_before_the_record_leaves_a_placeholder_the_purge_removes(ports):
    """Deleted before keyway read it: a placeholder tombstone (a late create cannot resurrect
    it) that belongs to the connection that heard of it, so its retention purge removes it."""
    from datetime import datetime, timedelta

    from shared.clock import isoformat
    from shared.scheduler import purge

    subscribe(ports)
    connect(ports, "conn-gh", "github")
    add_repo(ports, "conn-gh", "github", payload("github", "issues.opened")["repository"])
    send(ports, "github", "issue_comment.deleted", received_at=LATER)
    [placeholder] = ports.business.query("comments")
    assert placeholder.data["deleted"] is True and "external_id" not in placeholder.data
    assert placeholder.data["connection"] == "conn-gh"
    send(ports, "github", "issue_comment.created", delivery="d-late")  # older than the delete
    assert ports.business.get("comments", placeholder.id)["deleted"] is True

    now = datetime.fromisoformat(LATER.replace("Z", "+00:00")) + timedelta(days=1)
    doc = ports.business.get("connections", "conn-gh")
    ports.business.put("connections", "conn-gh", {**doc, "status": "disconnected",
                                                   "purge_at": isoformat(now)})
    purge.sweep(ports, now)
    assert ports.business.query("comments") == [] and ports.business.query("repositories") == []


def test_a_repository_removed_before_keyway_read_it_leaves_a_placeholder_the_purge_removes(
        ports):
    """``installation_repositories.removed`` naming a repository keyway never stored: its
    placeholder tombstone belongs to the connection, so the retention purge takes it too."""
    from datetime import datetime, timedelta

    from shared.clock import isoformat
    from shared.scheduler import purge

    subscribe(ports)
    connect(ports, "conn-app", "github", installation_id="957387")
    send(ports, "github", "installation_repositories.removed", received_at=LATER)
    [placeholder] = [s.data for s in ports.business.query("repositories")]
    assert placeholder["deleted_reason"] == "access_lost" and "external_id" not in placeholder
    assert placeholder["connection"] == "conn-app"
    now = datetime.fromisoformat(LATER.replace("Z", "+00:00")) + timedelta(days=1)
    doc = ports.business.get("connections", "conn-app")
    ports.business.put("connections", "conn-app", {**doc, "status": "disconnected",
                                                    "purge_at": isoformat(now)})
    purge.sweep(ports, now)
    assert ports.business.query("repositories") == []
