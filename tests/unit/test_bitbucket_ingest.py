"""ingest turns Bitbucket's webhook events into the fetcher's records: pull requests, comments
and issues upserted, a deleted comment and a withdrawn approval tombstoned as of their own time,
out-of-order and repeated events changing nothing, other events acknowledged and ignored."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from shared import messages
from shared.bootstrap import build
from shared.config import Config
from shared.ingest.handler import on_webhook_event
from shared.records import bitbucket as bb
from shared.records.model import Context, record_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bitbucket" / "webhooks"
RECEIVED = "2030-01-01T00:00:00.000000Z"
REPO = "{673a6070-3421-46c9-9d48-90745f7bfe8e}"
MONA = "{d301aafa-d676-4ee0-88be-962be7417567}"


def payload(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def send(ports, name: str, body: dict | None = None, received_at: str = RECEIVED) -> dict:
    body = body if body is not None else payload(name)
    message = {"provider": "bitbucket", "event": name.replace(".", ":", 1), "delivery": name,
               "connection": None, "received_at": received_at, "headers": {}, "payload": body}
    on_webhook_event(ports, messages.Inbound("events-bitbucket", "webhook.event", 1,
                                             "webhook-bitbucket", message, "m-1"))
    return body


def rid(kind: str, key: str) -> str:
    return record_id("acme", "bitbucket", kind, key)


@pytest.fixture
def ports(tmp_path: Path):
    ports = build(Config.from_env({"KEYWAY_STATE_DIR": str(tmp_path / "state")}))
    ports.business.put("connections", "conn-bb", {
        "tenant": "acme", "provider": "bitbucket", "kind": "app", "status": "active"})
    record = bb.repository(payload("issue.created")["repository"],
                           Context("acme", "bitbucket", "conn-bb",
                                   observed_at="2015-01-01T00:00:00.000000Z"))
    ports.business.put("repositories", record["id"], record)
    return ports


def test_pull_request_events_in_order_end_merged(ports):
    for name in ("pullrequest.created", "pullrequest.updated", "pullrequest.fulfilled"):
        send(ports, name)
    pr = ports.business.get("pull_requests", rid("pull_requests", f"{REPO}#1"))
    assert (pr["state"], pr["title"]) == ("merged", "Title of pull request (updated)")
    assert pr["updated_at"] == "2015-04-07T09:12:40.003512Z"
    send(ports, "pullrequest.rejected")
    declined = ports.business.get("pull_requests", rid("pull_requests", f"{REPO}#3"))
    assert declined["state"] == "closed"


def test_an_older_event_arriving_late_and_a_redelivery_change_nothing(ports):
    send(ports, "pullrequest.updated")
    key = rid("pull_requests", f"{REPO}#1")
    before = ports.business.get("pull_requests", key)
    send(ports, "pullrequest.created")  # older: loses
    for _ in range(2):
        send(ports, "pullrequest.updated")
    assert ports.business.get("pull_requests", key) == before


def test_comments_are_created_edited_and_deleted(ports):
    send(ports, "pullrequest.comment_created")
    send(ports, "pullrequest.comment_updated")
    edited = ports.business.get("comments", rid("comments", "17"))
    assert (edited["body"], edited["review_comment"], edited["path"]) == (
        "Comment text, edited", True, "path/to/file")
    send(ports, "pullrequest.comment_deleted")
    gone = ports.business.get("comments", rid("comments", "16"))
    assert gone["deleted"] is True
    assert gone["deleted_at"] == RECEIVED  # after the comment's own updated_on
    send(ports, "pullrequest.comment_updated")  # unrelated comment stays
    assert ports.business.get("comments", rid("comments", "17"))["deleted"] is False


def test_an_approval_and_its_withdrawal_follow_the_events_own_dates(ports):
    review_id = rid("reviews", f"{REPO}#1:{MONA}")
    send(ports, "pullrequest.approved")
    review = ports.business.get("reviews", review_id)
    assert (review["state"], review["submitted_at"]) == ("approved", "2015-04-06T16:34:59.195330Z")
    send(ports, "pullrequest.unapproved")
    withdrawn = ports.business.get("reviews", review_id)
    assert withdrawn["deleted"] is True
    assert withdrawn["deleted_at"] == "2015-04-06T16:52:29.779109Z"  # the event's date
    send(ports, "pullrequest.approved")  # the older approval redelivered: stays withdrawn
    assert ports.business.get("reviews", review_id)["deleted"] is True


def test_removing_a_change_request_does_not_delete_a_later_approval(ports):
    approved = payload("pullrequest.approved")
    send(ports, "pullrequest.approved", approved)
    removed = {**approved, "changes_request": {"date": "2015-04-06T17:00:00.000000+00:00",
                                               "user": approved["approval"]["user"]}}
    del removed["approval"]
    send(ports, "pullrequest.changes_request_removed", removed)
    review = ports.business.get("reviews", rid("reviews", f"{REPO}#1:{MONA}"))
    assert (review["deleted"], review["state"]) == (False, "approved")


def test_issue_events_and_issue_comments(ports):
    send(ports, "issue.updated")
    send(ports, "issue.created")  # older: the resolved issue stays resolved
    issue = ports.business.get("issues", rid("issues", f"{REPO}#1"))
    assert (issue["state"], issue["assignees"][0]["external_id"]) == ("closed", MONA)
    send(ports, "issue.comment_created")
    comment = ports.business.get("comments", rid("comments", "issue:5"))
    assert comment["parent"] == rid("issues", f"{REPO}#1")


def test_other_events_and_unknown_repositories_are_acknowledged_and_dropped(ports, caplog):
    with caplog.at_level(logging.INFO):
        send(ports, "repo.push", {"repository": payload("issue.created")["repository"]})
        send(ports, "pullrequest.created", {**payload("pullrequest.created"),
                                            "repository": {"uuid": "{someone-else}"}})
    keys = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest.")]
    assert keys == ["ingest.bitbucket.ignored_event", "ingest.bitbucket.unknown_account"]
    assert ports.business.query("pull_requests") == []
