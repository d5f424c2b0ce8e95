"""Token scopes as the simulators enforce them: one :class:`ScopeTable` per provider says, for
each ``METHOD /template`` (the documented template, as :func:`.wire.route_template` writes
it), which scopes suffice. A requirement is a tuple of alternatives; an alternative is the set
of scopes that must all be granted (Jira's classic or granular scopes; GitLab's ``read_api``
or ``api``; Bitbucket's one list). ``implies`` widens what a token holds before checking
(Bitbucket: ``pullrequest`` implies ``repository``). A route the table does not name falls to
``default`` (by method), else is not checked.

Each provider refuses in its own words; the simulators render the refusal from
:meth:`ScopeTable.missing`, in their shared request wrapper, before anything else is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from werkzeug.wrappers import Request

from keyway.simulators.wire import ROUTE

Requirement = tuple[frozenset[str], ...]  # any one alternative, every scope of it


def any_of(*scopes: str) -> Requirement:
    """Any one of ``scopes`` suffices."""
    return tuple(frozenset((s,)) for s in scopes)


def all_of(*scopes: str) -> Requirement:
    """Every one of ``scopes`` is needed."""
    return (frozenset(scopes),)


def route_of(request: Request) -> str | None:
    """``METHOD /template`` of the route a request matched (None outside a simulator)."""
    template = request.environ.get(ROUTE)
    return f"{request.method} {template}" if template else None


@dataclass(frozen=True)
class ScopeTable:
    """What each route needs; see the module docstring."""

    rules: Mapping[str, Requirement]
    implies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default: Mapping[str, Requirement] = field(default_factory=dict)  # by HTTP method
    strip: str = ""  # a prefix dropped from templates before lookup (Jira's /ex/jira/{id})

    def granted(self, scopes: Iterable[str]) -> frozenset[str]:
        """``scopes`` and everything they imply."""
        held, todo = set(), list(scopes)
        while todo:
            scope = todo.pop()
            if scope not in held:
                held.add(scope)
                todo.extend(self.implies.get(scope, ()))
        return frozenset(held)

    def required(self, route: str) -> Requirement | None:
        """The requirement of ``METHOD /template`` (None: not checked)."""
        method, _, template = route.partition(" ")
        if self.strip and template.startswith(self.strip):
            template = template[len(self.strip):]
        key = f"{method} {template}"
        return self.rules[key] if key in self.rules else self.default.get(method)

    def satisfied(self, route: str, scopes: Iterable[str]) -> bool:
        needed, held = self.required(route), self.granted(scopes)
        return needed is None or any(alternative <= held for alternative in needed)

    def missing(self, request: Request, scopes: Iterable[str]) -> Requirement | None:
        """The requirement ``request`` fails with these ``scopes``; None when it may go on."""
        route = route_of(request)
        if route is None or self.satisfied(route, scopes):
            return None
        return self.required(route)


def flat(requirement: Requirement) -> list[str]:
    """Every scope a requirement names, in a stable order (for error bodies)."""
    return sorted({scope for alternative in requirement for scope in alternative})
