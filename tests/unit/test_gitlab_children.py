"""GitLab children through GraphQL, the answers the simulator does not produce: an approver
list GitLab answers ``null`` or longer than 100, a next page of notes refused, a parent gone
between listing and query — each parent ends read, pending or sent to REST, never lost."""

from __future__ import annotations

import pytest

from shared.fetch._graphql import GraphQLResponse
from shared.fetch.errors import ProviderRefused, TokenRejected
from shared.fetch.gitlab import children
from shared.fetch.gitlab.plan import MERGE_REQUEST_CHILDREN
from shared.fetch.groups import GroupOutcome
from shared.fetch.plan import Parent
from shared.records.model import Context, record_id

CTX = Context("t-1", "gitlab", "conn-1", repository=record_id("t-1", "gitlab", "repositories",
                                                              "10001"),
              observed_at="2026-01-01T00:00:00.000000Z")
KIND = MERGE_REQUEST_CHILDREN.read.args[0]
EMPTY = {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


class FakeReader:
    """Answers queries in order from ``answers`` (an exception is raised); keeps writes."""

    def __init__(self, *answers) -> None:
        self.answers, self.sent, self.written = list(answers), [], []

    def full_path(self, ctx: Context) -> str:
        return "acme/project-0001"

    def query(self, document: str, variables: dict) -> GraphQLResponse:
        self.sent.append(document)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return GraphQLResponse(answer, (), None, {})

    def write(self, produced) -> None:
        self.written += produced if isinstance(produced, list) else [produced] if produced else []


def merge_request(iid: int, notes=EMPTY, approved_by=EMPTY) -> dict:
    return {"iid": str(iid), "updatedAt": "2026-01-01T00:00:00Z", "notes": notes,
            "approvedBy": approved_by}


def page(*nodes) -> dict:
    return {"project": {"mergeRequests": {"nodes": list(nodes)}}}


def parents(*iids: int) -> list[Parent]:
    return [Parent("pull_request", i, {"id": "10001", "merge_request_iid": str(i)})
            for i in iids]


def read(reader: FakeReader, *iids: int) -> GroupOutcome:
    outcome = GroupOutcome()
    children.read(KIND, reader, CTX, parents(*iids), outcome)
    return outcome


def numbers(found) -> list[int]:
    return [p.number for p in found]


def test_approvers_answered_null_or_over_100_are_read_over_rest():
    more = {"nodes": [{"id": "gid://gitlab/User/1", "username": "a"}],
            "pageInfo": {"hasNextPage": True, "endCursor": "x"}}
    outcome = read(FakeReader(page(merge_request(1, approved_by=None),
                                   merge_request(2, approved_by=more), merge_request(3))),
                   1, 2, 3)
    assert numbers(outcome.rest["approvals"]) == [1, 2]
    assert numbers(outcome.read["approvals"]) == [3]
    assert numbers(outcome.read["mr_notes"]) == [1, 2, 3]


def test_a_refused_next_page_of_notes_sends_that_parents_notes_to_rest():
    first = {"nodes": [{"id": "gid://gitlab/Note/5", "body": "hi", "system": False,
                        "createdAt": "2026-01-01T00:00:00Z",
                        "updatedAt": "2026-01-01T00:00:00Z",
                        "author": {"id": "gid://gitlab/User/7", "username": "u"},
                        "position": None}],
             "pageInfo": {"hasNextPage": True, "endCursor": "c1"}}
    reader = FakeReader(page(merge_request(1, notes=first)),
                        ProviderRefused("refused", types=("UNKNOWN",)))
    outcome = read(reader, 1)
    assert numbers(outcome.rest["mr_notes"]) == [1] and not outcome.read["mr_notes"]
    assert [r["external_id"] for r in reader.written if r["kind"] == "comments"] == ["5"]
    assert reader.sent == ["merge_request_children", "merge_request_notes_page"]


def test_a_rejected_token_on_a_next_page_still_fails_the_run():
    first = {"nodes": [], "pageInfo": {"hasNextPage": True, "endCursor": "c1"}}
    with pytest.raises(TokenRejected):
        read(FakeReader(page(merge_request(1, notes=first)), TokenRejected("401")), 1)


def test_a_parent_gone_since_it_was_listed_has_nothing_left_to_read():
    outcome = read(FakeReader(page(merge_request(2))), 1, 2)
    assert numbers(outcome.read["mr_notes"]) == numbers(outcome.read["approvals"]) == [1, 2]
    assert not outcome.rest and not outcome.failed


def test_a_project_graphql_does_not_show_leaves_every_parent_pending():
    outcome = read(FakeReader({"project": None}), 1, 2)
    assert [(p.number, why) for _, p, why in outcome.failed["mr_notes"]] == [
        (1, "not_found"), (2, "not_found")]
    assert len(outcome.failed["approvals"]) == 2 and not outcome.read
