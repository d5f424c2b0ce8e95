"""The GraphQL documents GitLab's fetcher may send, exactly as sent, and how their answers
become the REST payloads :mod:`shared.records.gitlab` already reads.

Each is listed in ``providers.json`` (``api.graphql.documents``) by name with the SHA-256 of
this text, its variables and every field it selects (vetted as GitHub's are:
:mod:`shared.providers.graphql`).

* ``merge_request_children``: the notes (first 100) and approvers of up to 100 merge
  requests of one project, by ``iids``;
* ``issue_children``: the notes (first 100) of up to 100 issues, by ``iids``;
* ``merge_request_notes_page`` / ``issue_notes_page``: the next 100 notes of one merge
  request or issue after a cursor, for a parent with more than 100 notes.

GitLab answers ``mergeRequests(iids:)`` in its own order and leaves out an iid it does not
find (deleted since it was listed), so answers are matched by ``iid``. A note's ``id`` and a
user's ``id`` are global ids (``gid://gitlab/Note/123``): the number after the last ``/`` is
the REST ``id``. A note with a ``position`` is a diff note (REST ``type: "DiffNote"``); its
``diffRefs.headSha`` is the REST ``position.head_sha``. Approvals have no time of their own
over REST either: the merge request's ``updatedAt`` stands for the REST answer's
``updated_at``.
"""

from __future__ import annotations

from typing import Any

from shared.errors import InvalidInput

_NOTES = """
        nodes {
          id
          body
          system
          createdAt
          updatedAt
          author { id username }
          position { newPath oldPath newLine oldLine diffRefs { headSha } }
        }
        pageInfo { hasNextPage endCursor }"""

MERGE_REQUEST_CHILDREN = """query MergeRequestChildren($fullPath: ID!, $iids: [String!]!) {
  project(fullPath: $fullPath) {
    mergeRequests(iids: $iids, first: 100) {
      nodes {
        iid
        updatedAt
        notes(first: 100) {""" + _NOTES + """
        }
        approvedBy(first: 100) {
          nodes { id username }
          pageInfo { hasNextPage endCursor }
        }
      }
    }
  }
}
"""

ISSUE_CHILDREN = """query IssueChildren($fullPath: ID!, $iids: [String!]!) {
  project(fullPath: $fullPath) {
    issues(iids: $iids, first: 100) {
      nodes {
        iid
        notes(first: 100) {""" + _NOTES + """
        }
      }
    }
  }
}
"""

MERGE_REQUEST_NOTES_PAGE = """query MergeRequestNotesPage($fullPath: ID!, $iid: String!, \
$after: String!) {
  project(fullPath: $fullPath) {
    mergeRequest(iid: $iid) {
      iid
      notes(first: 100, after: $after) {""" + _NOTES + """
      }
    }
  }
}
"""

ISSUE_NOTES_PAGE = """query IssueNotesPage($fullPath: ID!, $iid: String!, $after: String!) {
  project(fullPath: $fullPath) {
    issue(iid: $iid) {
      iid
      notes(first: 100, after: $after) {""" + _NOTES + """
      }
    }
  }
}
"""

DOCUMENTS: dict[str, str] = {
    "merge_request_children": MERGE_REQUEST_CHILDREN,
    "issue_children": ISSUE_CHILDREN,
    "merge_request_notes_page": MERGE_REQUEST_NOTES_PAGE,
    "issue_notes_page": ISSUE_NOTES_PAGE,
}


def gid_number(value: Any, field: str) -> int:
    """The numeric id at the end of a global id (``gid://gitlab/Note/123`` → 123)."""
    tail = value.rsplit("/", 1)[-1] if isinstance(value, str) else ""
    if not tail.isdigit():
        raise InvalidInput(f"{field}: expected a GitLab global id")
    return int(tail)


def _user(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput("author: expected an object")
    return {"id": gid_number(raw.get("id"), "author.id"), "username": raw.get("username")}


def rest_note(node: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL note as ``GET …/notes`` gives it (the fields the records read)."""
    position = node.get("position")
    note: dict[str, Any] = {
        "id": gid_number(node.get("id"), "id"), "body": node.get("body"),
        "system": node.get("system"), "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"), "author": _user(node.get("author")),
        "type": "DiffNote" if position else None}
    if position:
        if not isinstance(position, dict):
            raise InvalidInput("position: expected an object")
        refs = position.get("diffRefs") or {}
        note["position"] = {"new_path": position.get("newPath"),
                            "old_path": position.get("oldPath"),
                            "new_line": position.get("newLine"),
                            "old_line": position.get("oldLine"),
                            "head_sha": refs.get("headSha") if isinstance(refs, dict) else None}
    return note


def rest_approvals(node: dict[str, Any], iid: int) -> dict[str, Any]:
    """A merge request's ``approvedBy`` as ``GET …/approvals`` gives it."""
    approvers = (node.get("approvedBy") or {}).get("nodes") or []
    return {"iid": iid, "updated_at": node.get("updatedAt"),
            "approved_by": [{"user": _user(user)} for user in approvers]}
