"""The part of GitLab's GraphQL schema the simulator serves, resolved field by field from the
same store the REST API reads (:mod:`.gitlab_data`), and GitLab's query limits.

Types and fields as GitLab's GraphQL reference has them: ``Query.project(fullPath: ID!)``;
``Project.mergeRequests`` / ``issues`` (``iids: [String!]``, ``first``, ``after``),
``mergeRequest(iid: String!)``, ``issue(iid: String)``; ``MergeRequest`` / ``Issue`` with
``iid`` (a String), times, ``notes`` and (merge requests) ``approvedBy`` connections;
``Note`` (``id`` a global id ``gid://gitlab/Note/N``, ``body``, ``system``, ``author:
UserCore``, ``position: DiffPosition`` on diff notes only, with ``diffRefs { headSha }``);
``PageInfo``. A field the type lacks is refused as graphql-ruby does (``undefinedField``), as
is an argument it does not take (``argumentNotAccepted``).

Limits (GitLab's "GraphQL API" page, section "Limits"; GitLab's ``GitlabSchema``):

* max page size 100: ``first`` above it returns 100 nodes (a connection never answers more;
  nothing is refused — GitLab documents a cap, not an error);
* depth at most 20 for an authenticated request: deeper → ``Query has depth of N, which
  exceeds max depth of 20``, no ``data``;
* complexity at most 250 for an authenticated request: more → ``Query has complexity of N,
  which exceeds max complexity of 250``, no ``data``.

Complexity is scored as GitLab's own code does (``Types::BaseField``, ``Resolvers::
BaseResolver``; the documentation names the limit, not the scoring): every field 1 plus its
selections; a connection served by a resolver (a project's ``mergeRequests``, ``issues``)
scores its selections + 1 (+1 with ``sort``, +5 with ``search``), raised by 1 % per item of
its page size (``first``, at most 100) — not when asked by ``iid``/``iids``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from keyway.simulators.activity import iso, sha
from keyway.simulators.gitlab_data import GitLabActivity, ProjectActivity
from shared.providers.graphql import Field

MAX_PAGE_SIZE, MAX_DEPTH, MAX_COMPLEXITY = 100, 20, 250
PAGED = ("first", "after")
# type → field → (its type or None for a scalar, the arguments it takes)
SCHEMA: dict[str, dict[str, tuple[str | None, tuple[str, ...]]]] = {
    "Query": {"project": ("Project", ("fullPath",))},
    "Project": {"id": (None, ()), "fullPath": (None, ()), "name": (None, ()),
                "mergeRequests": ("MergeRequestConnection",
                                  ("iids", "sort", "search", "state", *PAGED)),
                "issues": ("IssueConnection", ("iids", "sort", "search", "state", *PAGED)),
                "mergeRequest": ("MergeRequest", ("iid",)), "issue": ("Issue", ("iid",))},
    "MergeRequest": {"id": (None, ()), "iid": (None, ()), "title": (None, ()),
                     "createdAt": (None, ()), "updatedAt": (None, ()),
                     "project": ("Project", ()), "notes": ("NoteConnection", PAGED),
                     "approvedBy": ("UserCoreConnection", PAGED)},
    "Issue": {"id": (None, ()), "iid": (None, ()), "title": (None, ()),
              "createdAt": (None, ()), "updatedAt": (None, ()),
              "notes": ("NoteConnection", PAGED)},
    "Note": {"id": (None, ()), "body": (None, ()), "system": (None, ()),
             "createdAt": (None, ()), "updatedAt": (None, ()), "author": ("UserCore", ()),
             "position": ("DiffPosition", ())},
    "UserCore": {"id": (None, ()), "username": (None, ()), "name": (None, ())},
    "DiffPosition": {"newPath": (None, ()), "oldPath": (None, ()), "newLine": (None, ()),
                     "oldLine": (None, ()), "diffRefs": ("DiffRefs", ())},
    "DiffRefs": {"headSha": (None, ()), "baseSha": (None, ()), "startSha": (None, ())},
    "PageInfo": {"hasNextPage": (None, ()), "hasPreviousPage": (None, ()),
                 "endCursor": (None, ()), "startCursor": (None, ())},
}
for _node in ("MergeRequest", "Issue", "Note", "UserCore"):
    SCHEMA[f"{_node}Connection"] = {"nodes": (f"[{_node}]", ()), "pageInfo": ("PageInfo", ()),
                                    "count": (None, ())}
RESOLVED = {("Project", "mergeRequests"), ("Project", "issues")}  # connections with resolvers


class QueryError(Exception):
    """A refusal graphql-ruby answers with ``errors`` and no ``data``."""

    def __init__(self, message: str, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = {"message": message, **({"extensions": extensions} if extensions else {})}


def value(argument: Any, variables: Mapping[str, Any]) -> Any:
    kind, raw = argument
    if kind == "var":
        return variables.get(raw)
    if kind == "list":
        return [value(item, variables) for item in raw]
    return raw


def validate(type_name: str, selections: tuple[Field, ...],
             lacking: frozenset[str] = frozenset()) -> None:
    """Every field exists on its type (and is not one of ``lacking``, ``Type.field`` names an
    older GitLab does not have) and takes the arguments given (else ``QueryError``)."""
    for field in selections:
        if field.fragment:
            validate(field.name, field.selections, lacking)
            continue
        known = SCHEMA.get(type_name.strip("[]"), {})
        if field.name not in known or f"{type_name}.{field.name}" in lacking:
            raise QueryError(f"Field '{field.name}' doesn't exist on type '{type_name}'", {
                "code": "undefinedField", "typeName": type_name, "fieldName": field.name})
        child, accepted = known[field.name]
        for name, _ in field.arguments:
            if name not in accepted:
                raise QueryError(f"Field '{field.name}' doesn't accept argument '{name}'", {
                    "code": "argumentNotAccepted", "name": field.name,
                    "typeName": "Field", "argumentName": name})
        if child is not None:
            validate(child.strip("[]"), field.selections, lacking)


def depth(selections: tuple[Field, ...]) -> int:
    """Fields nested, the root's counting 1 (inline fragments add none)."""
    return max((depth(f.selections) + (0 if f.fragment else 1) for f in selections), default=0)


def complexity(type_name: str, selections: tuple[Field, ...],
               variables: Mapping[str, Any]) -> int:
    """GitLab's score of these selections (see the module docstring)."""
    total = 0
    for field in selections:
        if field.fragment:
            total += complexity(field.name, field.selections, variables)
            continue
        child_type = SCHEMA.get(type_name, {}).get(field.name, (None, ()))[0]
        child = complexity(child_type.strip("[]"), field.selections,
                           variables) if child_type else 0
        if (type_name, field.name) not in RESOLVED:
            total += 1 + child
            continue
        args = {name: value(a, variables) for name, a in field.arguments}
        score = child + 1 + (1 if args.get("sort") else 0) + (5 if args.get("search") else 0)
        limit = min(_first(args), MAX_PAGE_SIZE)
        multiplier = 0 if args.get("iids") or args.get("iid") else 0.01
        total += int(score + score * limit * multiplier)
    return total


def _first(args: Mapping[str, Any]) -> int:
    first = args.get("first")
    return first if isinstance(first, int) and first >= 0 else MAX_PAGE_SIZE


def _cursor(index: int) -> str:
    return base64.b64encode(f"offset:{index}".encode()).decode()


def _offset(cursor: Any) -> int:
    try:
        return int(base64.b64decode(str(cursor)).decode().split(":", 1)[1])
    except (binascii.Error, ValueError, IndexError, UnicodeDecodeError):
        raise QueryError("Invalid cursor") from None


def gid(kind: str, number: int) -> str:
    return f"gid://gitlab/{kind}/{number}"


class Resolver:
    """Answers one parsed (and validated) query from ``activity``."""

    def __init__(self, activity: GitLabActivity, variables: Mapping[str, Any]) -> None:
        self.activity, self.variables = activity, variables

    def answer(self, selections: tuple[Field, ...]) -> dict[str, Any]:
        return self._select("Query", None, selections)

    def _select(self, type_name: str, obj: Any, selections: tuple[Field, ...]) -> Any:
        out: dict[str, Any] = {}
        for field in selections:
            if field.fragment:
                out.update(self._select(field.name, obj, field.selections))
                continue
            args = {name: value(a, self.variables) for name, a in field.arguments}
            raw = self._field(type_name, field.name, obj, args)
            child = SCHEMA[type_name][field.name][0]
            if child is None or raw is None:
                out[field.name] = raw
            elif child.startswith("["):
                out[field.name] = [self._select(child[1:-1], item, field.selections)
                                   for item in raw]
            else:
                out[field.name] = self._select(child, raw, field.selections)
        return out

    def _field(self, type_name: str, name: str, obj: Any, args: dict[str, Any]) -> Any:
        if type_name.endswith("Connection"):
            return obj[name] if name != "count" else obj["count"]
        handler: Callable[[Any, dict[str, Any]], Any] | None = getattr(
            self, f"_{type_name}_{name}", None)
        if handler is not None:
            return handler(obj, args)
        return obj.get(name) if isinstance(obj, dict) else None

    # ---- resolvers ------------------------------------------------------------------------------
    def _Query_project(self, obj: Any, args: dict[str, Any]) -> ProjectActivity | None:
        path = args.get("fullPath")
        return self.activity.find(path) if isinstance(path, str) and "/" in path else None

    def _Project_id(self, act: ProjectActivity, args: dict[str, Any]) -> str:
        return gid("Project", act.project["id"])

    def _Project_fullPath(self, act: ProjectActivity, args: dict[str, Any]) -> str:
        return act.project["path_with_namespace"]

    def _Project_name(self, act: ProjectActivity, args: dict[str, Any]) -> str:
        return act.project["name"]

    def _Project_mergeRequests(self, act: ProjectActivity, args: dict[str, Any]) -> dict:
        return self._threads(act, "MergeRequest", args)

    def _Project_issues(self, act: ProjectActivity, args: dict[str, Any]) -> dict:
        return self._threads(act, "Issue", args)

    def _Project_mergeRequest(self, act: ProjectActivity, args: dict[str, Any]) -> Any:
        return self._thread(act, "MergeRequest", args.get("iid"))

    def _Project_issue(self, act: ProjectActivity, args: dict[str, Any]) -> Any:
        return self._thread(act, "Issue", args.get("iid"))

    def _thread(self, act: ProjectActivity, kind: str, iid: Any) -> dict | None:
        if not isinstance(iid, str) or not iid.isdigit():
            return None
        item = self.activity.thread(act, kind, int(iid))
        return None if item is None else {"act": act, "kind": kind, "item": item}

    def _threads(self, act: ProjectActivity, kind: str, args: dict[str, Any]) -> dict:
        wanted = args.get("iids")
        found = [t for t in (self._thread(act, kind, str(i)) for i in wanted or ()) if t]
        if wanted is None:
            found = [t for t in (self._thread(act, kind, str(iid)) for (k, iid) in
                                 sorted(act.by_iid) if k == kind) if t]
        found.sort(key=lambda t: (-t["item"]["created"], -t["item"]["id"]))
        return self._page(found, args)

    def _page(self, items: list, args: dict[str, Any]) -> dict:
        start = _offset(args["after"]) if args.get("after") else 0
        chunk = items[start:start + min(_first(args), MAX_PAGE_SIZE)]
        end = start + len(chunk)
        return {"nodes": chunk, "count": len(items), "pageInfo": {
            "hasNextPage": end < len(items), "hasPreviousPage": start > 0,
            "startCursor": _cursor(start) if chunk else None,
            "endCursor": _cursor(end) if chunk else None}}

    def _MergeRequest_id(self, t: dict, args: dict[str, Any]) -> str:
        return gid(t["kind"], t["item"]["id"])

    _Issue_id = _MergeRequest_id

    def _MergeRequest_iid(self, t: dict, args: dict[str, Any]) -> str:
        return str(t["item"]["iid"])

    _Issue_iid = _MergeRequest_iid

    def _MergeRequest_title(self, t: dict, args: dict[str, Any]) -> str:
        return t["item"]["title"]

    _Issue_title = _MergeRequest_title

    def _MergeRequest_createdAt(self, t: dict, args: dict[str, Any]) -> str:
        return iso(t["item"]["created"])

    _Issue_createdAt = _MergeRequest_createdAt

    def _MergeRequest_updatedAt(self, t: dict, args: dict[str, Any]) -> str:
        return iso(t["item"]["updated"])

    _Issue_updatedAt = _MergeRequest_updatedAt

    def _MergeRequest_project(self, t: dict, args: dict[str, Any]) -> ProjectActivity:
        return t["act"]

    def _MergeRequest_notes(self, t: dict, args: dict[str, Any]) -> dict:
        notes = self.activity.notes(t["act"], t["kind"], t["item"]["iid"], "created_at",
                                    False) or []
        return self._page([_note(n, t["act"]) for n in notes], args)

    _Issue_notes = _MergeRequest_notes

    def _MergeRequest_approvedBy(self, t: dict, args: dict[str, Any]) -> dict:
        approvals = self.activity.approvals(t["act"], t["item"]["iid"])
        return self._page([_user(a["user"]) for a in approvals], args)


def _user(user: dict[str, Any] | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": gid("User", user["id"]), "username": user["username"], "name": user["name"]}


def _note(note: dict[str, Any], act: ProjectActivity) -> dict[str, Any]:
    position = None
    if note["type"] == "DiffNote":
        path, head = act.project["path_with_namespace"], sha(
            act.project["path_with_namespace"], note["iid"], "head")
        position = {"newPath": note["path"], "oldPath": note["path"],
                    "newLine": note["line"], "oldLine": None, "diffRefs": {
                        "headSha": head, "startSha": head,
                        "baseSha": sha(path, note["iid"], "base")}}
    return {"id": gid("Note", note["id"]), "body": note["body"], "system": note["system"],
            "createdAt": iso(note["created"]), "updatedAt": iso(note["updated"]),
            "author": _user(note["user"]), "position": position}
