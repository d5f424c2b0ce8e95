"""A GitLab GraphQL answer keyway cannot trust changes no stored record: an answer with
``errors`` (even beside ``data``) or a complexity refusal is read over REST instead, with the
connection marked ``graphql.unavailable: refused``; a partial page (a connection without
``nodes`` or ``pageInfo``, ``null`` for part of the document) fails the run as
``provider.malformed`` and writes nothing of it, even the parents it did answer in full."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from keyway.simulators import GitLabSimulator
from shared.errors import KeywayError
from shared.fetch import groups, status
from shared.fetch.errors import MalformedResponse
from shared.fetch.gitlab.plan import PLAN
from tests.integration.test_fetch_partial import CONNECTION, sync_status, synced
from tests.integration.test_fetch_sync import counted, sync
from tests.integration.test_gitlab_graphql_sync import fresh, records

# every record the bad answer could reach (a touched merge request's own record is rewritten
# by the REST list, which answered it correctly)
CHILD_KINDS = ("comments", "reviews", "issues", "repositories")


@pytest.fixture
def sim(leak_guard):
    with GitLabSimulator(rate_limit=1_000_000, on_issue=leak_guard.track) as sim:
        sim.seed_activity("acme", repos=1, prs=8, issues=4, comments=80, reviews=10)
        yield sim


@pytest.fixture
def token(sim, leak_guard):
    return leak_guard.track(sim.mint_token(scopes=("read_api",)).access_token)


def snapshot(ports) -> dict:
    """The records, less a review's ``updated_at``: an approval has no time of its own (the
    merge request's stands for it), so editing the merge request moves it."""
    found = {kind: records(ports, kind) for kind in CHILD_KINDS}
    for review in found["reviews"].values():
        review.pop("updated_at")
    return found | {"labels": records(ports, "labels").keys()}


def merge_requests(body: dict) -> list[dict]:
    return body["data"]["project"]["mergeRequests"]["nodes"]


def tampered(body: dict) -> tuple[dict, list[dict]]:
    """A copy whose first merge request with notes says something GitLab does not (an edited
    note, an extra approver), and the other nodes (the ones to break, after it)."""
    body = copy.deepcopy(body)
    nodes = merge_requests(body)
    first = next(i for i, n in enumerate(nodes) if n["notes"]["nodes"])
    nodes[first]["notes"]["nodes"][0] |= {"body": "not what GitLab holds",
                                          "updatedAt": "2030-01-01T00:00:00Z"}
    nodes[first]["approvedBy"]["nodes"].append({"id": "gid://gitlab/User/999999",
                                                "username": "mallory"})
    return body, nodes[first + 1:] or nodes[:first]


def errors_beside_data(body: dict) -> dict:
    body, _ = tampered(body)
    return body | {"errors": [{"message": "Internal server error",
                               "path": ["project", "mergeRequests"]}]}


def complexity_refusal(body: dict) -> dict:
    return {"errors": [{"message": "Query has complexity of 251, which exceeds max complexity "
                                   "of 250"}]}


def notes_without_page_info(body: dict) -> dict:
    body, others = tampered(body)
    del others[-1]["notes"]["pageInfo"]
    return body


def notes_without_nodes(body: dict) -> dict:
    body, others = tampered(body)
    del others[-1]["notes"]["nodes"]
    return body


def notes_null_with_an_error(body: dict) -> dict:
    body, others = tampered(body)
    others[-1]["notes"] = None
    return body | {"errors": [{"message": "not found", "extensions": {"code": "NOT_FOUND"},
                               "path": ["project", "mergeRequests", "nodes"]}]}


def merge_requests_without_nodes(body: dict) -> dict:
    body = copy.deepcopy(body)
    body["data"]["project"]["mergeRequests"] = {"count": 8}
    return body


def ended_by_its_key(ports, sim, token: str):
    """One sync whose failure is recorded as fetch-P's handler records it: the error's key."""
    owner = status.begin(ports, "t-1", CONNECTION)
    try:
        result = sync(ports, sim, PLAN, token, connection=CONNECTION)
    except KeywayError as e:
        status.end(ports, CONNECTION, owner, "failed", reason=e.key)
        raise
    status.end(ports, CONNECTION, owner, "done", stats=vars(result.stats))
    return result


def resync_with(ports, sim, token, rewrite: Callable[[dict], dict]):
    """A first sync, then every merge request edited (titles only: their notes and approvals
    unchanged) and a resync whose first GraphQL answer is ``rewrite`` of GitLab's."""
    assert synced(ports, sim, PLAN, token).finished
    sim.touch("pull", 8)
    sim.graphql.rewrite.append(rewrite)
    before = snapshot(ports)
    return before, lambda: synced(ports, sim, PLAN, token)


@pytest.mark.parametrize("rewrite", [errors_beside_data, complexity_refusal])
def test_a_refused_answer_changes_no_record_and_is_reported_as_refused(
        tmp_path, sim, token, caplog, rewrite):
    ports = fresh(tmp_path, "refused")
    before, run = resync_with(ports, sim, token, rewrite)
    result, log, queries = counted(sim, run)
    assert result.finished and len(queries) == 1 and not sim.graphql.rewrite
    assert any(r.path.endswith("/notes") for r in log)  # read over REST instead
    assert snapshot(ports) == before
    mark = ports.business.get("connections", CONNECTION)[groups.FALLBACK_FIELD]
    assert mark["reason"] == "refused"
    (missing,) = sync_status(ports)["missing"]
    assert missing["reason"] == "graphql.unavailable: refused"
    logged = [r.getMessage() for r in caplog.records]
    assert logged.count("fetch.graphql_unavailable") == 1
    assert "provider.graphql_errors" in logged


@pytest.mark.parametrize("rewrite", [notes_without_page_info, notes_without_nodes,
                                     notes_null_with_an_error, merge_requests_without_nodes])
def test_a_partial_page_changes_no_record_and_fails_the_run_as_malformed(
        tmp_path, sim, token, rewrite):
    ports = fresh(tmp_path, "partial")
    before, _ = resync_with(ports, sim, token, rewrite)
    with pytest.raises(MalformedResponse) as raised:
        ended_by_its_key(ports, sim, token)
    assert raised.value.key == "provider.malformed" and not sim.graphql.rewrite
    assert snapshot(ports) == before
    assert (sync_status(ports)["state"], sync_status(ports)["reason"]) == (
        "failed", "provider.malformed")
    assert groups.FALLBACK_FIELD not in ports.business.get("connections", CONNECTION)

    assert synced(ports, sim, PLAN, token).finished  # GitLab answering whole again: all read
    assert records(ports, "comments") == before["comments"]
