"""The GraphQL gate (promise 5): which GraphQL documents a provider client may send.

GraphQL reads code as readily as metadata (``repository { object(expression: "main:app.py")
{ ... on Blob { text } } }``), so a GraphQL endpoint can never simply be allowlisted. Instead
the provider table names every document the client may send (``api.graphql.documents``): the
SHA-256 of its exact text, its variables with their types, and every field path it selects.
The text itself lives in code (``shared/fetch/<provider>/graphql.py``). Before anything is
sent, :func:`vet` checks the text against its table entry — same hash, a single ``query``
operation, exactly the declared variables, exactly the declared field paths, none of them in
:data:`FORBIDDEN_FIELDS` — and :func:`check_variables` checks the values against the declared
types. A document that fails any check is refused with :class:`DocumentRefused`.

The parser is deliberately small: one ``query`` operation; fields with arguments (variables,
integers, enum names and lists of those) and inline fragments (``... on Type``). Aliases,
directives, fragment definitions and spreads, string literals, default values, mutations and
subscriptions are refused, so what :func:`paths` lists is everything the document reads.

Field paths are ``/``-joined from the root, an inline fragment written ``...Type``:
``nodes/...PullRequest/reviews/nodes/databaseId``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Field names and fragment types (compared lower-case) that read code, file trees, diffs or
# commit contents. A document selecting any of them is refused by the table and the client.
FORBIDDEN_FIELDS: frozenset[str] = frozenset({
    "object", "blob", "text", "tree", "treeentry", "entries", "entry", "file", "files",
    "contents", "content", "diff", "diffhunk", "patch", "commit", "commits", "history",
    "target", "readme", "submodules", "blame", "changedfileslist", "lines",
})
VARIABLE_TYPES: frozenset[str] = frozenset({"ID!", "[ID!]!", "String", "String!", "[String!]!",
                                            "Int!"})
MAX_DEPTH = 12
MAX_TEXT = 1024  # longest ID or String variable value
_INT_RANGE = (-(2 ** 31), 2 ** 31 - 1)
_TOKEN = re.compile(r"""
    (?P<skip>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$&():=@\[\]{|}])
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<int>-?(?:0|[1-9][0-9]*)(?![._0-9A-Za-z]))
""", re.VERBOSE)


class DocumentRefused(ValueError):
    """A document, or its variables, that may not be sent (``args[0]`` says why, no values)."""


@dataclass(frozen=True)
class Field:
    """A selected field, or an inline fragment (``fragment``: ``name`` is its type)."""

    name: str
    fragment: bool
    arguments: tuple[tuple[str, Any], ...]  # values: ("var", n) ("int", i) ("enum", n) ("list", …)
    selections: tuple[Field, ...]


@dataclass(frozen=True)
class Operation:
    kind: str
    name: str | None
    variables: Mapping[str, str]  # variable name → type text, e.g. "ids" → "[ID!]!"
    selections: tuple[Field, ...]


def tokens(text: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` of each significant token; anything the parser does not take raises."""
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise DocumentRefused(f"unsupported GraphQL syntax at offset {position}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "skip":
            yield kind, match.group()


class _Parser:
    def __init__(self, text: str, max_depth: int = MAX_DEPTH) -> None:
        self._tokens, self._at, self._max_depth = list(tokens(text)), 0, max_depth
        self._used: set[str] = set()

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _is(self, value: str) -> bool:
        token = self._peek()
        return token is not None and token[1] == value

    def _kind_is(self, kind: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == kind

    def _take(self, kind: str | None = None, value: str | None = None) -> str:
        token = self._peek()
        if token is None or (kind and token[0] != kind) or (value and token[1] != value):
            raise DocumentRefused(f"expected {value or kind} at token {self._at}")
        self._at += 1
        return token[1]

    def operation(self) -> Operation:
        kind, name, variables = "query", None, {}
        if not self._is("{"):
            kind = self._take("name")
            if kind != "query":
                raise DocumentRefused(f"only query operations may be sent, not {kind[:20]!r}")
            if self._kind_is("name"):
                name = self._take("name")
            if self._is("("):
                variables = self._variables()
        if self._is("@"):
            raise DocumentRefused("directives are not allowed")
        selections = self._selection_set(1)
        if self._peek() is not None:
            raise DocumentRefused("a document holds exactly one operation and no fragments")
        if set(variables) != self._used:
            raise DocumentRefused("every declared variable must be used, and only those")
        return Operation(kind, name, variables, selections)

    def _variables(self) -> dict[str, str]:
        self._take("punct", "(")
        found: dict[str, str] = {}
        while not self._is(")"):
            self._take("punct", "$")
            name = self._take("name")
            self._take("punct", ":")
            if name in found:
                raise DocumentRefused(f"variable ${name} declared twice")
            found[name] = self._type()
            if self._is("=") or self._is("@"):
                raise DocumentRefused("variable defaults and directives are not allowed")
        self._take("punct", ")")
        return found

    def _type(self) -> str:
        if self._is("["):
            self._take("punct", "[")
            inner = self._type()
            self._take("punct", "]")
            text = f"[{inner}]"
        else:
            text = self._take("name")
        return text + ("!" if self._is("!") and self._take("punct", "!") else "")

    def _selection_set(self, depth: int) -> tuple[Field, ...]:
        if depth > self._max_depth:
            raise DocumentRefused(f"selections nested deeper than {self._max_depth}")
        self._take("punct", "{")
        found = []
        while not self._is("}"):
            found.append(self._selection(depth))
        self._take("punct", "}")
        if not found:
            raise DocumentRefused("an empty selection set")
        return tuple(found)

    def _selection(self, depth: int) -> Field:
        if self._kind_is("spread"):
            self._take("spread")
            if not self._is("on"):
                raise DocumentRefused("named fragment spreads are not allowed")
            self._take("name", "on")
            type_name = self._take("name")
            return Field(type_name, True, (), self._selection_set(depth + 1))
        name = self._take("name")
        if self._is(":"):
            raise DocumentRefused("aliases are not allowed")
        arguments = self._arguments() if self._is("(") else ()
        if self._is("@"):
            raise DocumentRefused("directives are not allowed")
        selections = self._selection_set(depth + 1) if self._is("{") else ()
        return Field(name, False, arguments, selections)

    def _arguments(self) -> tuple[tuple[str, Any], ...]:
        self._take("punct", "(")
        found: list[tuple[str, Any]] = []
        while not self._is(")"):
            name = self._take("name")
            self._take("punct", ":")
            found.append((name, self._value()))
        self._take("punct", ")")
        if not found or len({n for n, _ in found}) != len(found):
            raise DocumentRefused("empty or repeated arguments")
        return tuple(found)

    def _value(self) -> Any:
        kind, text = self._peek() or ("", "")
        if text == "$":
            self._take("punct", "$")
            name = self._take("name")
            self._used.add(name)
            return ("var", name)
        if kind == "int":
            return ("int", int(self._take("int")))
        if kind == "name":
            return ("enum", self._take("name"))
        if text == "[":
            self._take("punct", "[")
            items = []
            while not self._is("]"):
                items.append(self._value())
            self._take("punct", "]")
            return ("list", tuple(items))
        raise DocumentRefused("only variables, integers, enums and lists may be arguments")


def parse(text: str, max_depth: int = MAX_DEPTH) -> Operation:
    """The operation of ``text``, or :class:`DocumentRefused` for anything outside the subset
    (``max_depth``: how deep selections may nest; a simulator measuring depth asks more)."""
    if not isinstance(text, str) or not text.strip():
        raise DocumentRefused("the document is empty")
    return _Parser(text, max_depth).operation()


def paths(selections: tuple[Field, ...], prefix: str = "") -> list[str]:
    """Every selected field path, parents included, in document order."""
    found: list[str] = []
    for field in selections:
        path = prefix + ("..." if field.fragment else "") + field.name
        found.append(path)
        found += paths(field.selections, path + "/")
    return found


def forbidden_segment(path: str) -> str | None:
    """The first segment of ``path`` that names a forbidden field or type, if any."""
    for segment in path.split("/"):
        if segment.removeprefix("...").lower() in FORBIDDEN_FIELDS:
            return segment
    return None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vet(text: str, digest: str, variables: Mapping[str, str],
        selects: tuple[str, ...]) -> Operation:
    """``text`` parsed, if it is exactly the document its table entry describes."""
    if not isinstance(text, str) or sha256(text) != digest:
        raise DocumentRefused("the document text does not match its vetted SHA-256")
    operation = parse(text)
    if dict(operation.variables) != dict(variables):
        raise DocumentRefused("the document declares other variables than the table")
    selected = paths(operation.selections)
    if len(set(selected)) != len(selected) or set(selected) != set(selects):
        raise DocumentRefused("the document selects other fields than the table lists")
    bad = next((s for s in map(forbidden_segment, selected) if s), None)
    if bad:
        raise DocumentRefused(f"the document selects the forbidden field {bad!r}")
    return operation


# ---- variables ---------------------------------------------------------------------------------
def _scalar(kind: str, value: Any, name: str) -> Any:
    if kind == "Int":
        if isinstance(value, bool) or not isinstance(value, int) or not (
                _INT_RANGE[0] <= value <= _INT_RANGE[1]):
            raise DocumentRefused(f"variable ${name} must be an Int")
        return value
    if (not isinstance(value, str) or not value or len(value) > MAX_TEXT
            or not value.isprintable() or any(c.isspace() for c in value)):
        raise DocumentRefused(f"variable ${name} must be a non-empty {kind} without spaces")
    return value


def _typed(type_text: str, value: Any, name: str, max_list: int) -> Any:
    required = type_text.endswith("!")
    inner = type_text[:-1] if required else type_text
    if value is None:
        if required:
            raise DocumentRefused(f"variable ${name} is required")
        return None
    if inner.startswith("["):
        if not isinstance(value, list | tuple) or not value or len(value) > max_list:
            raise DocumentRefused(f"variable ${name} must be a list of 1 to {max_list} items")
        return [_typed(inner[1:-1], item, name, max_list) for item in value]
    return _scalar(inner, value, name)


def check_variables(declared: Mapping[str, str], values: Mapping[str, Any],
                    max_list: int) -> dict[str, Any]:
    """``values`` as they will be sent: exactly the declared names, each of its declared type
    (a list at most ``max_list`` long); otherwise :class:`DocumentRefused`."""
    if not isinstance(values, Mapping):
        raise DocumentRefused("variables must be a mapping")
    unexpected = set(values) - set(declared)
    if unexpected:
        raise DocumentRefused(f"{len(unexpected)} undeclared variable(s)")
    return {name: _typed(kind, values.get(name), name, max_list)
            for name, kind in declared.items() if values.get(name) is not None
            or kind.endswith("!")}
