"""GitLab's notes and approvals of up to 100 merge requests (or notes of 100 issues) per
GraphQL query (:class:`~shared.fetch.plan.GroupSpec`, read by :mod:`shared.fetch.groups`).

One ``…_children`` query per chunk of changed parents, by ``iids``; a parent with more than
100 notes is followed with one ``…_notes_page`` query per further 100. Every note and approval
goes through the REST child list's own ``normalize`` after :mod:`.graphql` gave it the REST
shape, so the records are the ones the REST path writes. A parent GitLab no longer has (not in
the answer) has nothing to read; a project GitLab does not show (``project: null``) leaves its
parents pending as ``not_found``; a next page refused, more than 100 approvers, or an
``approvedBy`` GitLab answers ``null`` (the field is nullable) sends that parent's list to REST.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.errors import PermanentError
from shared.fetch.errors import MalformedResponse, reason_or_raise
from shared.fetch.gitlab import graphql as documents
from shared.fetch.plan import ListSpec, Parent
from shared.records.model import Context


@dataclass(frozen=True)
class Kind:
    """What one ``…_children`` document reads: its GraphQL names and the REST child lists
    (``notes``, ``approvals``) whose records it writes and whose names it settles under."""

    document: str
    collection: str  # the project's connection: mergeRequests | issues
    page_document: str
    single: str  # the project's field for one parent: mergeRequest | issue
    notes: ListSpec
    approvals: ListSpec | None = None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponse(f"gitlab graphql: expected an object for {what}")
    return value


def _connection(node: dict[str, Any], name: str, paged: bool = True
                ) -> tuple[list[dict[str, Any]], dict]:
    """A connection's nodes and (``paged``: the document selects it) its ``pageInfo``; a
    connection without them is a partial answer, never read as a complete one."""
    found = _object(node.get(name), name)
    nodes = found.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise MalformedResponse(f"gitlab graphql: expected {name}.nodes objects")
    info = found.get("pageInfo")
    if paged and not (isinstance(info, dict) and isinstance(info.get("hasNextPage"), bool)):
        raise MalformedResponse(f"gitlab graphql: expected {name}.pageInfo")
    return nodes, info if isinstance(info, dict) else {}


def _checked(kind: Kind, nodes: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The answer's parents by iid, once every one of them is whole (else nothing of the
    answer is written: :class:`MalformedResponse`)."""
    for node in nodes:
        _connection(node, "notes")
        if kind.approvals is not None and node.get("approvedBy") is not None:
            _connection(node, "approvedBy")
    return {_iid(node): node for node in nodes}


def _iid(node: dict[str, Any]) -> int:
    iid = node.get("iid")
    if not isinstance(iid, str) or not iid.isdigit():
        raise MalformedResponse("gitlab graphql: expected an iid")
    return int(iid)


def read(kind: Kind, reader, ctx: Context, parents: list[Parent], outcome) -> None:
    """Read the children of ``parents`` (one chunk) into ``outcome``; raises when the first
    query is refused (the caller falls back to REST)."""
    full_path = reader.full_path(ctx)
    answer = reader.query(kind.document, {"fullPath": full_path,
                                          "iids": [str(p.number) for p in parents]})
    names = [kind.notes.name] + ([kind.approvals.name] if kind.approvals else [])
    project = answer.data.get("project")
    if project is None:  # not found, or not visible to the token (REST would answer 404)
        for name in names:
            outcome.failed[name] += [(None, parent, "not_found") for parent in parents]
        return
    nodes, _ = _connection(_object(project, "project"), kind.collection, paged=False)
    by_iid = _checked(kind, nodes)
    for parent in parents:
        node = by_iid.get(parent.number)
        if node is not None:
            _notes(kind, reader, ctx, parent, node, full_path, outcome)
            if kind.approvals is not None:
                _approvals(kind.approvals, reader, ctx, parent, node, outcome)
        else:  # deleted since it was listed: nothing left to read
            for name in names:
                outcome.read[name].append(parent)


def _notes(kind: Kind, reader, ctx: Context, parent: Parent, node: dict[str, Any],
           full_path: str, outcome) -> None:
    while True:
        notes, info = _connection(node, "notes")
        for note in [documents.rest_note(note) for note in notes]:  # the whole page, or none
            reader.write(kind.notes.normalize(note, ctx, parent))
        if info.get("hasNextPage") is not True:
            outcome.read[kind.notes.name].append(parent)
            return
        cursor = info.get("endCursor")
        if not isinstance(cursor, str) or not cursor:
            raise MalformedResponse("gitlab graphql: a next page without a cursor")
        try:
            answer = reader.query(kind.page_document, {
                "fullPath": full_path, "iid": str(parent.number), "after": cursor})
        except PermanentError as e:
            reason_or_raise(e)
            outcome.rest[kind.notes.name].append(parent)  # REST reads this one's notes
            return
        project = answer.data.get("project")
        found = project.get(kind.single) if isinstance(project, dict) else None
        if found is None:  # deleted between two pages
            outcome.read[kind.notes.name].append(parent)
            return
        node = _object(found, kind.single)


def _approvals(spec: ListSpec, reader, ctx: Context, parent: Parent, node: dict[str, Any],
               outcome) -> None:
    if node.get("approvedBy") is None:  # nullable in GitLab's schema: REST says what it is
        outcome.rest[spec.name].append(parent)
        return
    _, info = _connection(node, "approvedBy")
    if info.get("hasNextPage") is True:  # more than 100 approvers: REST lists them all
        outcome.rest[spec.name].append(parent)
        return
    reader.write(spec.normalize(documents.rest_approvals(node, parent.number), ctx, parent))
    outcome.read[spec.name].append(parent)
