"""Tombstones: the reason a record is gone, the newer-wins rule for deletions and restores, and
a repository taking every record under it along."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.bootstrap import build
from shared.clock import isoformat
from shared.config import Config
from shared.errors import InvalidInput
from shared.records import store
from shared.records.model import record_id

REPO = record_id("acme", "github", "repositories", "7")


def at(seconds: int) -> str:
    return isoformat(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds))


@pytest.fixture
def business(tmp_path: Path):
    return build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path)})).business


def _record(kind: str, key: str, version: int, **fields) -> dict:
    return {"id": record_id("acme", "github", kind, key), "kind": kind, "tenant": "acme",
            "provider": "github", "external_id": key, "updated_at": at(version),
            "deleted": False, **fields}


def test_a_tombstone_keeps_its_document_with_when_and_why(business) -> None:
    issue = _record("issues", "7#1", 1, repository=REPO, title="kept")
    store.upsert(business, issue)
    assert store.mark_deleted(business, "issues", issue["id"], at(5), "transferred") is True
    stored = business.get("issues", issue["id"])
    assert (stored["deleted"], stored["deleted_at"], stored["deleted_reason"], stored["title"]) \
        == (True, at(5), "transferred", "kept")


def test_the_default_reason_is_deleted_and_an_unknown_reason_is_refused(business) -> None:
    issue = _record("issues", "7#1", 1)
    store.upsert(business, issue)
    with pytest.raises(InvalidInput, match="deleted_reason"):
        store.mark_deleted(business, "issues", issue["id"], at(5), "vanished")
    assert business.get("issues", issue["id"])["deleted"] is False
    store.mark_deleted(business, "issues", issue["id"], at(5))
    assert business.get("issues", issue["id"])["deleted_reason"] == "deleted"


def test_a_newer_version_clears_every_tombstone_field(business) -> None:
    issue = _record("issues", "7#1", 1)
    store.upsert(business, issue)
    store.mark_deleted(business, "issues", issue["id"], at(5), "access_lost")
    assert store.upsert(business, {**issue, "updated_at": at(6)}) is True
    stored = business.get("issues", issue["id"])
    assert stored["deleted"] is False
    assert not {"deleted_at", "deleted_reason"} & set(stored)


def test_a_sighting_after_the_deletion_restores_an_unchanged_record(business) -> None:
    repo = _record("repositories", "7", 1)
    store.upsert(business, repo)
    store.mark_deleted(business, "repositories", repo["id"], at(5), "access_lost")
    assert store.upsert(business, repo) is False  # same old version: no proof it is back
    assert store.upsert(business, repo, seen_at=at(4)) is False  # asked before the deletion
    assert store.upsert(business, repo, seen_at=at(8)) is True
    stored = business.get("repositories", repo["id"])
    assert (stored["deleted"], stored["restored_at"]) == (False, at(8))
    # a delete event from before the sighting (a late webhook) does not remove it again
    assert store.mark_deleted(business, "repositories", repo["id"], at(7)) is False
    assert business.get("repositories", repo["id"])["deleted"] is False
    assert store.mark_deleted(business, "repositories", repo["id"], at(9)) is True


def test_a_sighting_never_overrides_newer_data(business) -> None:
    issue = _record("issues", "7#1", 9, title="new")
    store.upsert(business, issue)
    assert store.upsert(business, {**issue, "updated_at": at(3), "title": "old"},
                        seen_at=at(20)) is False
    assert business.get("issues", issue["id"])["title"] == "new"


def test_a_gone_repository_takes_its_records_along_and_leaves_others(business) -> None:
    other = record_id("acme", "github", "repositories", "8")
    store.upsert(business, _record("repositories", "7", 1))
    mine = [_record("issues", "7#1", 1, repository=REPO),
            _record("comments", "c1", 1, repository=REPO),
            _record("labels", "l1", 1, repository=REPO)]
    theirs = _record("issues", "8#1", 1, repository=other)
    for record in [*mine, theirs]:
        store.upsert(business, record)
    late = _record("comments", "c2", 9, repository=REPO)  # edited after the removal
    store.upsert(business, late)
    assert store.mark_repository_gone(business, REPO, at(5), "access_lost") == 4
    for record in mine:
        stored = business.get(record["kind"], record["id"])
        assert (stored["deleted"], stored["deleted_reason"]) == (True, "access_lost")
    assert business.get("repositories", REPO)["deleted_reason"] == "access_lost"
    assert business.get("issues", theirs["id"])["deleted"] is False
    assert business.get("comments", late["id"])["deleted"] is False  # newer than the removal


def test_a_deleted_issue_takes_its_comments_along_unless_it_is_newer(business) -> None:
    issue = _record("issues", "7#1", 1, repository=REPO)
    comments = [_record("comments", f"c{n}", 1, repository=REPO, parent=issue["id"])
                for n in range(2)]
    elsewhere = _record("comments", "c9", 1, repository=REPO, parent="another")
    for record in [issue, *comments, elsewhere]:
        store.upsert(business, record)
    newer = {**issue, "updated_at": at(9)}
    store.upsert(business, newer)
    assert store.mark_thread_deleted(business, "issues", issue["id"], at(5)) == 0
    assert all(not business.get("comments", c["id"])["deleted"] for c in comments)
    assert store.mark_thread_deleted(business, "issues", issue["id"], at(10)) == 3
    assert all(business.get("comments", c["id"])["deleted_reason"] == "deleted"
               for c in comments)
    assert business.get("comments", elsewhere["id"])["deleted"] is False
    assert store.mark_thread_deleted(business, "issues", issue["id"], at(10)) == 0
